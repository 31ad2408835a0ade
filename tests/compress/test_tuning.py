import copy

import pytest
import torch
from torch import nn

from edgewise.compress.tuning import Tuning, tune


def _pair() -> tuple[nn.Module, nn.Module]:
    """A teacher and a student that is the teacher with noise on its weights."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)).eval()
    with torch.no_grad():
        teacher[1].running_mean.uniform_(-0.5, 0.5)
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return teacher, student


def test_distillation_pulls_the_student_towards_the_teacher_and_leaves_batchnorm_statistics_alone():
    teacher, student = _pair()
    x = torch.randn(256, 8)
    statistics = student[1].running_mean.clone()
    record = tune(student, x, "classification", Tuning(steps=100, lr=1e-2), teacher=teacher)
    assert record["targets"] == "distill"
    assert record["held_out_loss_after"] < 0.5 * record["held_out_loss_before"]
    assert record["kept_step"] > 0
    assert torch.equal(student[1].running_mean, statistics)
    assert not student.training


def test_steps_that_do_not_lower_the_held_out_loss_are_not_kept():
    teacher, student = _pair()
    state = copy.deepcopy(student.state_dict())
    record = tune(student, torch.randn(64, 8), "classification", Tuning(steps=10, lr=50.0, check_every=5),
                  teacher=teacher)
    assert record["kept_step"] == 0
    assert record["held_out_loss_after"] == record["held_out_loss_before"]
    assert all(torch.equal(state[k], v) for k, v in student.state_dict().items())


def test_labels_are_used_where_there_is_no_teacher():
    teacher, student = _pair()
    x = torch.randn(256, 8)
    y = teacher(x).argmax(1)
    record = tune(student, x, "classification", Tuning(steps=100, lr=1e-2), y=y)
    assert record["targets"] == "labels"
    assert record["held_out_loss_after"] < record["held_out_loss_before"]
    with pytest.raises(ValueError, match="either a teacher"):
        tune(student, x, "classification", teacher=teacher, y=y)
