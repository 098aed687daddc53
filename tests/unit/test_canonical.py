import hashlib
import json
import math

import pytest
from replay.manifests.canonical import canonical_json, document_id, sha256_file


def test_key_order_does_not_change_bytes():
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json(
        {"a": {"c": 3, "d": 2}, "b": 1}
    )


def test_no_insignificant_whitespace():
    assert canonical_json({"a": [1, 2], "b": None}) == b'{"a":[1,2],"b":null}'


def test_unicode_is_utf8_not_escaped():
    data = canonical_json({"name": "Zoë 信用"})
    assert "Zoë 信用".encode() in data
    assert b"\\u" not in data


@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e-300, 5e-324, 2.0**53 + 2, -0.0, 1e22])
def test_floats_round_trip_to_the_same_bits(value):
    decoded = json.loads(canonical_json({"x": value}))["x"]
    assert math.copysign(1, decoded) == math.copysign(1, value)
    assert decoded.hex() == value.hex()


def test_float_text_is_shortest_repr():
    assert canonical_json([0.1, 1e-07]) == b"[0.1,1e-07]"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ValueError):
        canonical_json({"nested": [1, {"x": value}]})


def test_document_id_is_sha256_of_canonical_bytes():
    document = {"z": 1, "a": "é"}
    assert document_id(document) == hashlib.sha256(canonical_json(document)).hexdigest()
    assert document_id(document) != document_id({"z": 1, "a": "e"})


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path, chunk_size=4096) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
