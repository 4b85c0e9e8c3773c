from __future__ import annotations

import itertools

import numpy as np

from cloud.data.reference import SCHEMA, build_reference, histogram, quantile_edges


def test_quantile_edges_are_increasing_and_roughly_equal_mass() -> None:
    v = np.random.default_rng(0).normal(size=10_000)
    edges = quantile_edges(v, 10)
    assert len(edges) == 11 and all(a < b for a, b in itertools.pairwise(edges))
    counts = histogram(v, edges)
    assert sum(counts) == v.size and max(counts) - min(counts) < 0.02 * v.size


def test_repeated_values_merge_edges_and_constants_get_one_bin() -> None:
    v = np.concatenate([np.zeros(900), np.linspace(0.1, 1, 100)])
    edges = quantile_edges(v, 10)
    assert edges[0] == 0.0 and len(edges) < 11
    assert quantile_edges(np.full(5, 3.0)) == [2.5, 3.5]


def test_histogram_clips_out_of_range_values_into_end_bins() -> None:
    assert histogram(np.array([-100.0, 0.5, 1.5, 100.0]), [0.0, 1.0, 2.0]) == [2, 2]


def test_reference_document_shapes_and_sums() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((50, 4, 4, 3)).astype(np.float32)
    scores = rng.dirichlet(np.ones(3), size=20).astype(np.float32)
    ref = build_reference(x, "image", ["r", "g", "b"], scores, ["a", "b", "c"])
    assert ref["schema"] == SCHEMA and ref["n"] == 50
    ins = ref["inputs"]
    assert ins["granularity"] == "channel" and len(ins["histograms"]) == 3
    for h in ins["histograms"]:
        assert len(h["edges"]) == len(h["counts"]) + 1
        assert sum(h["counts"]) == 50 * 4 * 4
    out = ref["outputs"]
    assert abs(sum(out["class_mix"]) - 1) < 1e-9 and len(out["class_mix"]) == 3
    conf = out["confidence"]
    assert conf["edges"][0] == 0.0 and conf["edges"][-1] == 1.0
    assert sum(conf["counts"]) == 20


def test_tabular_reference_has_one_histogram_per_feature() -> None:
    x = np.random.default_rng(1).normal(size=(30, 5)).astype(np.float32)
    scores = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    ref = build_reference(x, "tabular", list("abcde"), scores, ["n", "y"])
    assert ref["inputs"]["granularity"] == "feature"
    assert [sum(h["counts"]) for h in ref["inputs"]["histograms"]] == [30] * 5
    assert ref["outputs"]["class_mix"] == [0.5, 0.5]
