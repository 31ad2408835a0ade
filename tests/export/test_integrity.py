"""The checksums a written ONNX file carries: a changed weight or a changed node attribute is refused on reading."""

import onnx
import pytest
import torch

from edgewise import compress, export
from edgewise.board.errors import UserError
from edgewise.export.integrity import GRAPH_KEY, check_weights
from edgewise.zoo.models import build_model


@pytest.fixture
def written(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    q = compress.quantize(model, "uniform", 4, per_channel=True)
    return export.to_onnx(q.model, torch.rand(1, 1, 8, 8), tmp_path / "q.onnx", q.records).path


def test_a_changed_attribute_is_refused_as_a_damaged_graph(written):
    proto = onnx.load(str(written))
    check_weights(proto, written)
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    strides = next(a for a in conv.attribute if a.name == "strides")
    strides.ints[0] = 2
    with pytest.raises(UserError, match="graph does not match"):
        check_weights(proto, written)


def test_a_file_written_before_the_graph_checksum_is_checked_on_its_weights(written):
    proto = onnx.load(str(written))
    kept = [p for p in proto.metadata_props if p.key != GRAPH_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    check_weights(proto, written)
    init = next(i for i in proto.graph.initializer if i.raw_data)
    init.raw_data = bytes([init.raw_data[0] ^ 0xFF]) + init.raw_data[1:]
    with pytest.raises(UserError, match="weights do not match"):
        check_weights(proto, written)


def test_the_exporters_debugging_metadata_is_not_shipped(written):
    proto = onnx.load(str(written))
    assert not [p.key for n in proto.graph.node for p in n.metadata_props if p.key.startswith("pkg.torch.")]
    assert b"site-packages" not in written.read_bytes()  # no stack trace naming this machine's files
