"""The header facts subgroup analyses need, in a form that identifies no one.

Kept per file in the census: PatientSex (``M``, ``F``, ``O``), the patient's age as a band
(``age_band``; from PatientAge, never from the birth date, which is never read), the
Manufacturer and ManufacturerModelName, and a pseudonymous ``site`` code made from
InstitutionName with the project's keyed pseudonyms (:func:`imaging_tl.io.pseudonyms.pseudonym`,
prefix ``site``): the institution's name itself is never written; and the year of the study
(``study_year``, for the model card's date range: never the full date). ViewPosition and
BodyPartExamined are header keywords of every scan already.

Examples
--------
>>> age_band("045Y"), age_band("006M"), age_band("085Y"), age_band("abc")
('40-59', '0-17', '80+', None)
"""

from __future__ import annotations

import re
from typing import Any

from imaging_tl.io.pseudonyms import pseudonym

__all__ = ["AGE_BANDS", "SUBGROUP_ATTRIBUTES", "SUBGROUP_TAG_COLUMNS", "age_band",
           "study_year", "subgroup_tags"]

#: census columns this module fills
SUBGROUP_TAG_COLUMNS: tuple[str, ...] = (
    "PatientSex", "age_band", "Manufacturer", "ManufacturerModelName", "site", "study_year")

#: ``evaluate.subgroups`` names and the census column each one reads
SUBGROUP_ATTRIBUTES: dict[str, str] = {
    "sex": "PatientSex", "age_band": "age_band", "manufacturer": "Manufacturer",
    "model": "ManufacturerModelName", "site": "site", "view": "ViewPosition",
    "body_part": "BodyPartExamined",
}

#: (lowest age in years, band name), ascending
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "0-17"), (18, "18-39"), (40, "40-59"), (60, "60-79"), (80, "80+"))

_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_DAYS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}


def age_band(patient_age: Any) -> str | None:
    """The band of a DICOM age string (``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``), else None.

    Examples
    --------
    >>> age_band("017Y"), age_band("018Y"), age_band("039Y"), age_band("060Y"), age_band(None)
    ('0-17', '18-39', '18-39', '60-79', None)
    """
    if patient_age is None:
        return None
    m = _AGE.match(str(patient_age))
    if not m:
        return None
    years = int(m.group(1)) * _DAYS[m.group(2).upper()] / 365.25
    band = None
    for low, name in AGE_BANDS:
        if years >= low:
            band = name
    return band


def study_year(ds: Any) -> str | None:
    """The year of the study (StudyDate, else SeriesDate, AcquisitionDate, ContentDate),
    as four digits, else None. Only the year is kept: a full date can identify a patient.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.StudyDate = "20210314"
    >>> study_year(ds), study_year(Dataset())
    ('2021', None)
    """
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        text = _text(ds, keyword) or ""
        if re.match(r"^(19|20)\d\d", text):
            return text[:4]
    return None


def _text(ds: Any, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except (ValueError, TypeError, KeyError):
        return None  # a malformed optional element is "not known"
    text = str(value).strip() if value is not None else ""
    return text or None


def subgroup_tags(ds: Any, key: bytes | None = None) -> dict[str, str | None]:
    """The :data:`SUBGROUP_TAG_COLUMNS` of one DICOM dataset (None where not known).

    Parameters
    ----------
    ds : pydicom.Dataset
        A header as read by ``dcmread``.
    key : bytes, optional
        The pseudonym key (default: the project's, see :mod:`imaging_tl.io.pseudonyms`).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.PatientSex = "F"; ds.PatientAge = "052Y"
    >>> ds.InstitutionName = "General Hospital"; ds.Manufacturer = "Acme"
    >>> tags = subgroup_tags(ds, key=b"k" * 32)
    >>> tags["PatientSex"], tags["age_band"], tags["Manufacturer"], tags["site"][:5]
    ('F', '40-59', 'Acme', 'site:')
    """
    sex = (_text(ds, "PatientSex") or "").upper()
    institution = _text(ds, "InstitutionName")
    return {
        "PatientSex": sex if sex in ("M", "F", "O") else None,
        "age_band": age_band(_text(ds, "PatientAge")),
        "Manufacturer": _text(ds, "Manufacturer"),
        "ManufacturerModelName": _text(ds, "ManufacturerModelName"),
        "site": pseudonym(institution.upper(), prefix="site", key=key) if institution else None,
        "study_year": study_year(ds),
    }
