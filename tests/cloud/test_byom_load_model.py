"""A bring-your-own-model bundle (cloud/byom.py, ``edgekit bundle create``) loads through
the public API like an exported one: verified, then served on each of its runtimes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.byom import create_bundle
from edge import load_model
from edge.errors import BundleError
from tests.bundles import golden_inputs, make_onnx, raw_digit
from tests.digits import DIGITS_PREPROCESSING
from tests.edge.bundle_helpers import make_keys


def test_byom_bundle_loads_through_load_model(tmp_path: Path) -> None:
    import json

    ov = pytest.importorskip("openvino")
    onnx_file = make_onnx(tmp_path / "digits.onnx")
    xml = tmp_path / "digits.xml"
    ov.save_model(ov.convert_model(str(onnx_file)), str(xml))
    golden = tmp_path / "golden.npy"
    np.save(golden, golden_inputs(8))
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps(DIGITS_PREPROCESSING))
    priv, pub = make_keys(tmp_path)
    out = tmp_path / "byom.ekb"
    create_bundle(models=[onnx_file, xml], name="byom", version=2, out=out, key=priv,
                  golden_inputs=golden, preprocessing=str(pre))  # fmt: skip
    labels = []
    for runtime in ("onnxruntime", "openvino"):
        with load_model(out, pub, runtime=runtime) as model:
            assert model.variant.target == f"{runtime}-fp32" and model.manifest.version == 2
            labels.append([p.label for p in model.predict_batch([raw_digit(i) for i in range(4)])])
    assert labels[0] == labels[1]
    _priv, other = make_keys(tmp_path, "other")
    with pytest.raises(BundleError, match="does not verify"):
        load_model(out, other)
