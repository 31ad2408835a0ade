from edgewise.stages.experts import comparison_lines


def _record(criterion, classes, score, macs, tuned):
    return {"criterion": criterion, "removed": {"macs": macs},
            "expert": {"classes": classes, "score_name": "IoU[rail]", "score": score, "tuned": tuned}}


def test_experts_of_the_same_classes_are_compared_within_each_regime():
    records = {"rail": _record("lrp(first=flat)", ["rail"], 0.771, 0.50, True),
               "rail-magnitude": _record("l1", ["rail"], 0.794, 0.54, True),
               "rail-cut": _record("lrp(first=flat)", ["rail"], 0.543, 0.50, False),
               "rail-magnitude-cut": _record("l1", ["rail"], 0.508, 0.54, False),
               "sky": _record("l1", ["sky"], 0.9, 0.5, True)}
    (line,) = comparison_lines(records)  # sky has no other expert to compare with
    assert line == ("Experts for rail by IoU[rail]: rail-magnitude (l1, fine-tuned, MACs -54%) 0.794; rail (lrp, "
                    "fine-tuned, MACs -50%) 0.771; rail-cut (lrp, as cut, MACs -50%) 0.543; rail-magnitude-cut (l1, "
                    "as cut, MACs -54%) 0.508. Best as cut: rail-cut, fine-tuned: rail-magnitude.")
