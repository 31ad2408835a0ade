import functools
import itertools

import pytest
import torch
import torch.nn.functional as F

from edgewise import compress
from edgewise.compress.distillation import class_distillation, distillation_loss, log_distribution


def test_a_distribution_its_log_and_its_logits_give_the_same_class_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(5, 7)
    expected = F.log_softmax(logits, 1)
    for out in (logits, logits.softmax(1), expected):
        torch.testing.assert_close(log_distribution(out, 1), expected)
    torch.testing.assert_close(log_distribution(logits.softmax(1), 1, temperature=2.0), F.log_softmax(logits / 2, 1))
    sequence = torch.randn(2, 9, 4).softmax(-1)  # a CTC recogniser's (samples, steps, classes) softmax
    torch.testing.assert_close(log_distribution(sequence, -1).exp(), sequence)


def test_class_distillation_is_kl_of_the_teacher_times_t_squared():
    torch.manual_seed(1)
    teacher, student = torch.randn(6, 5), torch.randn(6, 5)
    assert float(class_distillation(teacher, teacher, 1)) == pytest.approx(0.0, abs=1e-6)
    kl = F.kl_div(F.log_softmax(student / 3, 1), F.log_softmax(teacher / 3, 1), log_target=True,
                  reduction="batchmean")
    assert float(class_distillation(student, teacher, 1, temperature=3.0)) == pytest.approx(9 * float(kl), rel=1e-5)
    maps = torch.randn(2, 3, 4, 4)  # segmentation: the class axis 1, averaged over samples and pixels
    assert float(distillation_loss("segmentation")(maps, maps)) == pytest.approx(0.0, abs=1e-6)


def test_distillation_reaches_the_student_only_and_outputs_without_classes_use_their_own_loss():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    distillation_loss("classification")(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None
    out, target = torch.randn(4, 8), torch.randn(4, 8)
    assert float(distillation_loss("regression")(out, target)) == pytest.approx(
        float(compress.tasks.regression_loss(out, target)))
    assert float(distillation_loss("embedding")(out, target)) == pytest.approx(
        float(compress.tasks.embedding_loss(out, target)))
    pair = distillation_loss("classification")((out, out[:, :1]), (target, target[:, :1]))  # a one-class output
    assert float(pair) == pytest.approx(float(class_distillation(out, target, 1)
                                              + compress.tasks.regression_loss(out[:, :1], target[:, :1])))


def test_qat_distilled_from_the_float_model_reads_no_labels(digits_mlp):
    """QAT with a teacher never reads the labels: with every label wrong it still trains towards the float model's
    answers, while training on those labels destroys the network."""
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.zoo.training import evaluate

    trained, data = digits_mlp
    score = lambda m: evaluate(m, data.val, data.task)["score"]  # noqa: E731
    wrong = (data.train.y + 1) % 10
    last_epoch = itertools.count().__next__  # a validation score that rises every call: the last epoch is kept
    settings = dict(x=data.train.x, y=wrong, score=lambda m: last_epoch(), epochs=2, patience=2, lr=3e-3)
    ptq = compress.quantize(trained.module, "ecq", 4, lam=0.5)
    distilled = compress.quantize(trained.module, "ecq", 4, lam=0.5, train=functools.partial(
        train_quantized, **settings, teacher=trained.module, temperature=2.0))
    on_labels = compress.quantize(trained.module, "ecq", 4, lam=0.5, train=functools.partial(
        train_quantized, **settings))
    assert score(distilled.model) >= score(ptq.model) - 0.01
    assert score(on_labels.model) < 0.5 < score(distilled.model)


def test_ecqx_qat_of_a_text_map_detector_distils_its_map_without_labels():
    """A per-pixel text map (N, 1, H, W) behind a Sigmoid: ECQx's relevances seed at its strongest pixels, and QAT
    then distils the map itself (its raw output, not the scored tensor) from the float model."""
    from edgewise.compress.quant.qat import train_quantized

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1),
                                torch.nn.Sigmoid()).eval()
    x = torch.rand(16, 3, 8, 8)
    ref = compress.ReferenceSamples.for_detection(x[:4], detections=5)
    distance = lambda m: float(compress.tasks.regression_loss(m(x).detach(), model(x).detach()))  # noqa: E731
    qat = compress.quantize(model, "ecqx", 4, ref=ref, train=functools.partial(
        train_quantized, x=x, y=torch.zeros(len(x), dtype=torch.long), teacher=model, epochs=1,
        score=lambda m: -distance(m)))
    assert qat.history["epochs_run"] == 1 and qat.history["post_training"]["assignment"]["0"]["beta"] is not None
    assert qat.model(x).shape == (16, 1, 8, 8) and not model[0]._forward_hooks
