import pytest
from replay.manifests.manifest import Manifest, schema_errors

from replay.errors import BadInput, IntegrityError
from tests.factories import manifest_document


def test_valid_document_passes_the_schema():
    assert schema_errors(manifest_document()) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"code__commit": "abc"}, "code/commit"),
        ({"code__entrypoint": "credit.model"}, "code/entrypoint"),
        ({"image__base": "python:3.11-slim"}, "image/base"),
        ({"schema_version": 2}, "schema_version"),
        ({"io__inputs__income": {"type": "float"}}, "io/inputs/income/type"),
        ({"io__inputs__age": {"type": "integer", "monotone": "up"}}, "io/inputs/age/monotone"),
        ({"model__files": []}, "model/files"),
        ({"reference__rows": 0}, "reference/rows"),
    ],
)
def test_schema_names_what_is_wrong(change, where):
    problems = schema_errors(manifest_document(**change))
    assert problems and problems[0].startswith(where)


def test_unknown_top_level_field_is_refused():
    document = manifest_document()
    document["extra"] = 1
    with pytest.raises(BadInput, match="schema"):
        Manifest(document)


def test_lock_text_must_match_its_hash():
    with pytest.raises(IntegrityError, match="lock"):
        Manifest(manifest_document(environment__lock_sha256="0" * 64))


def test_id_changes_with_any_field_and_survives_a_round_trip():
    manifest = Manifest(manifest_document())
    again = Manifest.from_json(manifest.to_json(), expected_id=manifest.manifest_id)
    assert again.manifest_id == manifest.manifest_id
    other = Manifest(manifest_document(runtime__seeds={"global": 1730}))
    assert other.manifest_id != manifest.manifest_id


def test_stored_json_that_does_not_hash_to_its_id_is_refused():
    manifest = Manifest(manifest_document())
    with pytest.raises(IntegrityError):
        Manifest.from_json(manifest.to_json(), expected_id="0" * 64)


def test_accessors():
    manifest = Manifest(manifest_document())
    assert manifest.entrypoint == "credit.model:predict"
    assert manifest.model_files[0].dvc.md5 == "3" * 32
    assert manifest.code.commit == "a" * 40 and manifest.environment.wheels[0].name == "joblib"
    assert manifest.short_id == manifest.manifest_id[:12]
