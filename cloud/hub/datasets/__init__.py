"""Dataset versions: labeled field samples frozen into immutable, fingerprinted versions
(``freeze``) and exported as a folder ``edgekit train`` reads (``archive``; the format and
``edgekit-dataset.json`` are cloud/data/field.py's)."""

from cloud.hub.datasets.archive import archive_path, build_archive, meta, records
from cloud.hub.datasets.freeze import check_name, fingerprint, freeze, version_dir

__all__ = [
    "archive_path",
    "build_archive",
    "check_name",
    "fingerprint",
    "freeze",
    "meta",
    "records",
    "version_dir",
]
