"""Who the synthetic patients are and where they were scanned, for subgroup analyses.

A :class:`Population` gives every patient (from its own random stream, apart from the
anatomy and findings, so an image's pixels do not change when it is given) an age, a
scanner (Manufacturer and ManufacturerModelName) and an institution; the DICOM writer puts
them in PatientAge, Manufacturer, ManufacturerModelName and InstitutionName (PatientSex
is drawn for every patient anyway). A :class:`Shift` plants a group-specific difference:
the images of one group get extra Gaussian noise, so a model does worse on them. A
dataset without a population keeps the fixed equipment tags of the demo set.

Examples
--------
>>> pop = Population(shift=Shift("manufacturer", "Borealis Medical", noise=0.1))
>>> tags = patient_tags(pop, seed=0, patient=3)
>>> sorted(tags)
['age', 'institution', 'manufacturer', 'model']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Population", "Shift", "patient_tags", "shifted_pixels"]


@dataclass(frozen=True)
class Shift:
    """Extra noise on the images of the patients whose ``attribute`` equals ``value``.

    Attributes
    ----------
    attribute : {"manufacturer", "model", "institution", "sex"}
        The patient tag that selects the group.
    value : str
        The group, e.g. a manufacturer's name.
    noise : float
        Standard deviation of the added Gaussian noise, on the [0, 1] display scale.

    Examples
    --------
    >>> Shift("manufacturer", "Borealis Medical", noise=0.2).noise
    0.2
    """

    attribute: str
    value: str
    noise: float = 0.1

    def __post_init__(self) -> None:
        if self.attribute not in ("manufacturer", "model", "institution", "sex"):
            raise ValueError(f"Shift.attribute: {self.attribute!r} is not one of manufacturer, "
                             "model, institution, sex")
        if not 0 <= self.noise <= 1:
            raise ValueError(f"Shift.noise must be in [0, 1], got {self.noise}")


@dataclass(frozen=True)
class Population:
    """The scanners, institutions and ages the patients are drawn from (uniformly).

    Attributes
    ----------
    scanners : tuple of (str, str)
        ``(Manufacturer, ManufacturerModelName)`` pairs.
    institutions : tuple of str
        InstitutionName values (clearly synthetic).
    ages : (int, int)
        Youngest and oldest age in years.
    shift : Shift, optional
        A planted group-specific difference.

    Examples
    --------
    >>> Population(ages=(40, 60)).scanners[0]
    ('Acme Imaging', 'AX-100')
    """

    scanners: tuple[tuple[str, str], ...] = (
        ("Acme Imaging", "AX-100"), ("Borealis Medical", "BM-7"), ("Cygnus Systems", "CS-3"))
    institutions: tuple[str, ...] = (
        "SYNTHETIC GENERAL HOSPITAL", "SYNTHETIC COUNTY CLINIC", "SYNTHETIC UNIVERSITY CENTRE")
    ages: tuple[int, int] = (18, 90)
    shift: Shift | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.scanners or not self.institutions:
            raise ValueError("Population needs at least one scanner and one institution")
        if not 0 <= self.ages[0] <= self.ages[1] <= 120:
            raise ValueError(f"Population.ages must be 0 <= low <= high <= 120, got {self.ages}")


def patient_tags(population: Population, seed: int, patient: int) -> dict[str, str]:
    """The tags of patient ``patient`` (0-based): ``age`` (DICOM ``nnnY``),
    ``manufacturer``, ``model`` and ``institution``; seeded, one stream per patient.

    Examples
    --------
    >>> patient_tags(Population(), 0, 1) == patient_tags(Population(), 0, 1)
    True
    """
    rng = np.random.default_rng([seed, patient, 0x5B6])
    make, model = population.scanners[int(rng.integers(len(population.scanners)))]
    institution = population.institutions[int(rng.integers(len(population.institutions)))]
    age = int(rng.integers(population.ages[0], population.ages[1] + 1))
    return {"age": f"{age:03d}Y", "manufacturer": make, "model": model,
            "institution": institution}


def shifted_pixels(pixels: np.ndarray, population: Population | None,
                   tags: dict[str, str], seed: int, patient: int, image: int) -> np.ndarray:
    """``pixels`` (a [0, 1] display image) with the population's shift applied when the
    patient belongs to the shifted group; otherwise unchanged (the same array).

    Examples
    --------
    >>> pop = Population(shift=Shift("sex", "F", noise=0.2))
    >>> x = np.full((4, 4), 0.5, np.float32)
    >>> bool(np.any(shifted_pixels(x, pop, {"sex": "F"}, 0, 0, 0) != x))
    True
    >>> shifted_pixels(x, pop, {"sex": "M"}, 0, 0, 0) is x
    True
    """
    shift = population.shift if population is not None else None
    if shift is None or tags.get(shift.attribute) != shift.value or shift.noise == 0:
        return pixels
    rng = np.random.default_rng([seed, patient, image, 0x5B7])
    noisy = pixels + rng.normal(0.0, shift.noise, pixels.shape)
    return np.clip(noisy, 0.0, 1.0).astype(pixels.dtype)
