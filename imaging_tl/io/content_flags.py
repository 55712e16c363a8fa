"""What a file's content may hold beyond its label: burned-in text (from the header) and
colour (as stored, or grey in content).

Examples
--------
>>> burned_in_flag({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"})
'likely'
"""

from __future__ import annotations

from typing import Any

__all__ = ["burned_in_flag", "colour_of"]


#: SOP classes where text is commonly burned into the pixels: secondary captures
#: (1.2.840.10008.5.1.4.1.1.7[.n]) and ultrasound (6.1, 6.2, 3.1)
_BURNED_IN_CLASSES = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.",
                      "1.2.840.10008.5.1.4.1.1.3.1")
_BURNED_IN_MODALITIES = {"US", "SC", "IVUS", "XC", "ES", "OT"}


def burned_in_flag(header: Any) -> str:
    """Whether the pixels may carry burned-in text (names, dates, IDs): ``"yes"`` when
    ``BurnedInAnnotation`` is YES, ``"likely"`` for secondary captures and ultrasound
    (where it is common) unless the header says NO, ``"no"`` otherwise, ``""`` when not
    known (no header). ``header`` is a pydicom Dataset or a mapping of its keywords.

    Examples
    --------
    >>> burned_in_flag({"BurnedInAnnotation": "YES"}), burned_in_flag({"Modality": "US"})
    ('yes', 'likely')
    >>> burned_in_flag({"Modality": "CR"}), burned_in_flag({"format": "png"})
    ('no', '')
    """
    def get(key: str) -> str:
        value = header.get(key) if hasattr(header, "get") else None
        value = getattr(value, "value", value)  # a pydicom DataElement
        return "" if value is None else str(value).strip().upper()

    said = get("BurnedInAnnotation")
    if said == "YES":
        return "yes"
    if said == "NO":
        return "no"
    modality, sop = get("Modality"), get("SOPClassUID")
    if modality in _BURNED_IN_MODALITIES or sop.startswith(_BURNED_IN_CLASSES):
        return "likely"
    return "no" if modality or sop else ""


def colour_of(row: Any, pixels: Any = None) -> str:
    """``"grey"`` or ``"rgb"`` as stored; with decoded ``pixels``, an RGB image whose
    channels agree is ``"grey_in_rgb"`` (what ``data.color: auto`` makes grey).

    Examples
    --------
    >>> colour_of({"SamplesPerPixel": 3}), colour_of({"SamplesPerPixel": 1})
    ('rgb', 'grey')
    """
    from imaging_tl.io.raster import channels_agree

    if str(row.get("SamplesPerPixel") or 1) != "3":
        return "grey"
    if pixels is not None and pixels.shape[-1] == 3 and channels_agree(
            pixels, row.get("value_range")):
        return "grey_in_rgb"
    return "rgb"
