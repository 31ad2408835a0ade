import pytest
import torch
import torchvision

from edgewise.compress.detectors import DetectorHeads, yolo_scores
from edgewise.compress.pruning import prune
from edgewise.compress.reference import ReferenceSamples


def _yolo():
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    torch.manual_seed(0)
    return tasks.DetectionModel("yolov8n.yaml", nc=3, verbose=False).eval()


def test_yolo_class_scores_are_anchors_by_classes():
    model = _yolo()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out[0].shape == (1, 7, 84) and yolo_scores(out).shape == (1, 84, 3)
    torch.testing.assert_close(yolo_scores(out)[0, :, 2], out[0][0, 6])


@pytest.mark.parametrize("criterion", ["lrp", "gradient"])
def test_yolo_is_pruned_by_relevance_of_its_detections_and_a_class_restricts_it(criterion):
    """Relevance starts at each image's strongest detections of the chosen class; the box branch, which the class
    scores do not depend on, is left whole with the reason instead of being cut to the floor."""
    model = _yolo()
    x = torch.rand(2, 3, 128, 128)
    plans = {}
    for cls in (0, 2):
        result = prune(model, ReferenceSamples.for_detection(x, classes=(cls,)), criterion, 0.3)
        plans[cls] = result.plan
        with torch.no_grad():
            assert result.model(x)[0].shape == (2, 7, 336)
        assert result.after.params < 0.85 * result.before.params
        assert "does not depend on it" in result.left_whole["model.22.cv2.0.0.conv"]
    assert any(plans[0][g] != plans[2][g] for g in plans[0])


def _calibrated(model, x):
    """Batch-norm statistics of `x`: with the initial ones a weightless MobileNetV3's signal shrinks to 1e-14 and
    every relevance with it."""
    for norm in model.modules():
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def test_a_torchvision_ssd_is_pruned_through_its_heads_and_still_detects():
    torch.manual_seed(0)
    ssd = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                    num_classes=5)
    x = torch.rand(2, 3, 320, 320)
    _calibrated(DetectorHeads(ssd), x)
    result = prune(DetectorHeads(ssd), ReferenceSamples.for_detection(x, classes=(1, 3)), "lrp", 0.3)
    assert result.after.params < 0.7 * result.before.params
    with torch.no_grad():
        detections = result.model.detector(list(x))
        heads = result.model(x)
    assert heads["cls_logits"].shape == (2, 3234, 5) and heads["bbox_regression"].shape == (2, 3234, 4)
    assert set(detections[0]) == {"boxes", "scores", "labels"}


@pytest.mark.parametrize("build", [torchvision.models.detection.ssdlite320_mobilenet_v3_large,
                                   torchvision.models.detection.retinanet_resnet50_fpn])
def test_detector_heads_see_what_torchvision_feeds_the_backbone_and_export_for_any_batch(build, tmp_path):
    from edgewise.export import open_session, to_onnx

    torch.manual_seed(0)
    heads = DetectorHeads(build(weights=None, weights_backbone=None, num_classes=3)).eval()
    x = torch.rand(2, 3, 200, 250)
    images, _ = heads.detector.transform(list(x))
    torch.testing.assert_close(heads.transformed(x), images.tensors)
    if build is torchvision.models.detection.ssdlite320_mobilenet_v3_large:
        to_onnx(heads, x[:1], tmp_path / "ssd.onnx")
        session = open_session(tmp_path / "ssd.onnx")
        got = session.run(None, {session.get_inputs()[0].name: x[:1].numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got[1]), heads(x[:1])["cls_logits"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["SegmentationModel", "PoseModel", "OBBModel"])
def test_segmentation_pose_and_obb_heads_are_scored_by_their_class_rows_only(kind):
    from edgewise.compress.detectors import detection_output

    tasks = pytest.importorskip("ultralytics.nn.tasks")
    yaml = {"SegmentationModel": "yolov8n-seg.yaml", "PoseModel": "yolov8n-pose.yaml", "OBBModel": "yolov8n-obb.yaml"}
    model = getattr(tasks, kind)(yaml[kind], nc=3, verbose=False).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    scores = detection_output(model)(out)
    assert scores.shape == (1, 84, 3)  # not 3 + the mask coefficients, keypoints or angle rows


def test_two_stage_detectors_are_refused_in_one_line():
    from edgewise.board.errors import UserError

    detector = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    with pytest.raises(UserError, match="FasterRCNN is a two-stage detector"):
        DetectorHeads(detector)
