import numpy as np
import onnx
import pytest
from onnx import TensorProto

from edgewise import compress, export
from edgewise.board.session import session_runner
from edgewise.export.integrity import check_weights
from edgewise.export.plain_runtime import (
    RUNTIME_KEY,
    _plain_session,
    needs_kit_session,
    plain_variant,
    runtime_speeds,
    variant_path,
)

FOUR_BIT = (TensorProto.INT4, TensorProto.UINT4)


@pytest.fixture(scope="module")
def four_bit_files(digits_cnn, tmp_path_factory):
    """The digits CNN with 4-bit weights per channel: its 4-bit ONNX file and its W4A8 one."""
    trained, data = digits_cnn
    q = compress.quantize(trained.module, "uniform", 4, per_channel=True)
    root = tmp_path_factory.mktemp("plain")
    example = data.train.x[:2]
    export.to_onnx(q.model, example, root / "q.onnx", q.records)
    export.to_w4a8(q.model, example, root / "w.onnx", q.records, data.train.x[:32].numpy(), "max", "uint8",
                   keep_float="none", correct_bias=False)
    return root / "q.onnx", root / "w.onnx", data.test.x[:16].numpy()


def _four_bit_dequantized(proto: onnx.ModelProto) -> list[str]:
    four = {i.name for i in proto.graph.initializer if i.data_type in FOUR_BIT}
    return [n.name for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in four]


def test_the_plain_variant_computes_the_file_exactly_with_no_4_bit_weight_left(four_bit_files, tmp_path):
    for path in four_bit_files[:2]:
        proto = onnx.load(str(path))
        assert needs_kit_session(proto) and _four_bit_dequantized(proto)
        variant = plain_variant(proto)
        assert not _four_bit_dequantized(variant) and not needs_kit_session(variant)
        read = {i for n in variant.graph.node for i in n.input}
        assert all(i.name in read for i in variant.graph.initializer)  # nothing the rewrite left unread
        assert {p.key: p.value for p in variant.metadata_props}[RUNTIME_KEY].startswith("a plain ONNX Runtime")
        out = tmp_path / f"{path.stem}.plain.onnx"
        onnx.save(variant, str(out))
        check_weights(onnx.load(str(out)), out)  # stamped with its own checksums
        x = four_bit_files[2]
        exact = session_runner(export.open_session(path, fast=False))(x)
        plain = session_runner(_plain_session(out))(x)
        np.testing.assert_allclose(plain, exact, rtol=1e-5, atol=1e-4)
        if path.name == "w.onnx":  # the same int8 kernels as the kit's session (whose 4-bit linear layers, as
            #  MatMulNBits, also quantize their inputs: the 4-bit file's kit run is not exact)
            np.testing.assert_array_equal(plain, session_runner(export.open_session(path))(x))


def test_the_w4a8_variant_keeps_its_int8_kernels(four_bit_files):
    variant = plain_variant(onnx.load(str(four_bit_files[1])))
    int8 = [i for i in variant.graph.initializer if i.data_type == TensorProto.INT8 and i.name.endswith("_int8")]
    assert int8 and all(i.data_type not in FOUR_BIT for i in variant.graph.initializer)


def _timer(kit_ms: float, plain_ms: float):
    """A fake clock: the kit's session (its graph rewritten at load) takes `kit_ms`, a plain session `plain_ms`, the
    variant in a plain session `kit_ms`."""
    def timer(session, feeds, runs):
        variant = session._model_path.endswith(".plain.onnx") if session._model_path else False
        return kit_ms if variant or not session._model_path else plain_ms

    return timer


@pytest.mark.parametrize("policy, plain_ms, written", [("auto", 3.0, True), ("auto", 1.1, False),
                                                       ("never", 3.0, False), ("always", 1.1, True)])
def test_the_variant_is_written_where_a_plain_session_is_slower_or_as_asked(four_bit_files, tmp_path, policy,
                                                                            plain_ms, written):
    path = tmp_path / "q.onnx"
    path.write_bytes(four_bit_files[0].read_bytes())
    speeds = runtime_speeds(path, four_bit_files[2], policy, timer=_timer(1.0, plain_ms))
    assert (speeds.kit_ms, speeds.plain_ms) == (1.0, plain_ms)
    assert variant_path(path).is_file() is written and (speeds.variant is not None) is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx", *(["q.plain.onnx"] if written else [])]
    line = speeds.line("q.onnx")
    assert "1.00 ms in the kit's session" in line and f"{plain_ms:.2f} ms in a plain ONNX Runtime session" in line
    if written:
        assert speeds.variant_ms == 1.0 and speeds.variant_bytes == variant_path(path).stat().st_size
        assert "q.plain.onnx" in line and speeds.to_json()["kind"] == "measured"
    elif policy == "never":
        assert "--plain-variant always writes the variant" in line


def test_a_file_both_sessions_load_alike_has_nothing_to_compare(digits_cnn, tmp_path):
    trained, data = digits_cnn
    export.to_onnx(trained.module, data.train.x[:2], tmp_path / "f.onnx")
    assert runtime_speeds(tmp_path / "f.onnx", data.test.x[:1].numpy(), "always") is None
    with pytest.raises(ValueError, match="policy"):
        runtime_speeds(tmp_path / "f.onnx", data.test.x[:1].numpy(), "sometimes")
