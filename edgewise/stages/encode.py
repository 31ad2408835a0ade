"""The encode stage: the quantized version's records coded losslessly with NNCodec, as the bitstream version."""

from __future__ import annotations

import copy
import time
from typing import Any

from edgewise import compress
from edgewise.base.atomic import write_bytes
from edgewise.base.records import load_records
from edgewise.compress.size import ladder_row
from edgewise.core.ledger import BITSTREAM, BITSTREAM_FILE, QUANTIZED, RECORDS, TORCH
from edgewise.core.rundir import StageWindow
from edgewise.stages.scoring import score_model
from edgewise.stages.state import ModelState


def encode_stage(state: ModelState, enabled: bool) -> None:
    """Code the quantized records with NNCodec, decode them back into the model, and check that nothing changed.

    The bitstream is how the weights travel; what runs is the quantized model it decodes to, so the
    bitstream version runs as the quantized one.
    """
    source = state.ledger[QUANTIZED]

    def encode(st: StageWindow) -> dict[str, Any]:
        records, floats = load_records(source.files[RECORDS])
        start = time.perf_counter()
        stream = compress.encode(records, floats)
        encode_s = time.perf_counter() - start
        path = write_bytes(st.path("model.nnc"), stream.data)
        st.add_output(path)
        start = time.perf_counter()
        decoded, decoded_floats = compress.decode(path.read_bytes())
        decode_s = time.perf_counter() - start
        rebuilt = compress.load_decoded(copy.deepcopy(state.module(source)), decoded, decoded_floats)
        label = f"{source.label} + NNCodec"
        row = score_model(state, st, rebuilt, label, len(stream.data))
        sparsity = sum(int((r.levels == 0).sum()) for r in records.values()) / max(stream.weights, 1)
        st.metrics.update(bytes=len(stream.data), payload_bytes=stream.payload_bytes,
                          bits_per_weight=stream.bits_per_weight, encode_s=encode_s, decode_s=decode_s)
        return {"versions": [{"id": BITSTREAM, "kind": BITSTREAM, "label": label, "parent": source.id, "row": row,
                              "files": {BITSTREAM_FILE: "model.nnc"}, "runs_as": source.id,
                              "rung": ladder_row("NNCodec bitstream", len(stream.data), stream.weights, row["score"],
                                                 sparsity=sparsity)}]}

    state.stage("encode", {}, [source.files[TORCH], source.files[RECORDS]], encode)
