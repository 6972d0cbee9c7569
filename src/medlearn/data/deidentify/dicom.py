"""De-identification of DICOM objects after DICOM PS3.15 Annex E: the Basic Application Level Confidentiality
Profile with the Retain Longitudinal Temporal Information with Modified Dates Option, and optionally the Retain
Patient Characteristics Option.

dicognito does the pseudonymisation, consistently for every file a :class:`DicomDeidentifier` sees (and across
runs given the same secret): names and IDs replaced, every UID remapped (so series, studies and references still
hold together, file meta included), dates and times shifted by one offset (intervals kept), addresses and
equipment replaced. On top of it, what the Basic Profile removes and dicognito keeps: private elements, overlays
and curves (burned text can hide there), free-text descriptions and comments, the patient's birth date and,
without the option, the patient's characteristics. The profile and options used are recorded in the object
(PatientIdentityRemoved, DeidentificationMethod and its code sequence, CID 7050).

Pixel data are not changed: an object that says (or whose kind suggests) identifying text is burned into the
pixels is reported and, unless allowed, not written.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import pydicom
from dicognito.anonymizer import Anonymizer
from dicognito.element_anonymizer import ElementAnonymizer
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

#: Removed (Basic Profile action X or D, kept by dicognito): free text that can name or describe the patient.
FREE_TEXT = (
    "AcquisitionComments",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "DerivationDescription",
    "ImageComments",
    "InterpretationText",
    "MedicalAlerts",
    "PatientComments",
    "PatientState",
    "PerformedProcedureStepDescription",
    "ReasonForTheRequestedProcedure",
    "RequestAttributesSequence",
    "RequestedProcedureDescription",
    "ScheduledProcedureStepDescription",
    "SeriesDescription",
    "StudyDescription",
    "TextComments",
    "VisitComments",
    "ProtocolName",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "CountryOfResidence",
    "RegionOfResidence",
)
#: The Retain Patient Characteristics Option keeps these; the Basic Profile removes them.
CHARACTERISTICS = (
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "SmokingStatus",
    "PregnancyStatus",
    "PatientSexNeutered",
    "LastMenstrualDate",
)
#: SOP classes whose pixels are often screen captures or carry burned-in text.
CAPTURE_MODALITIES = {"US", "SC", "OT", "XC", "DOC", "ES", "GM", "SM"}
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")


@dataclass
class DicomOutcome:
    """What happened to one object: the actions taken, and whether its pixels may show identifying text."""

    actions: list[str] = field(default_factory=list)
    burned_in: str | None = None


class DicomDeidentifier:
    """One pseudonymisation for a set of files (see the module docstring). ``secret`` seeds it: the same secret
    gives the same pseudonyms, UIDs and date shift; keep it secret, it is what links the outputs to the inputs."""

    def __init__(self, secret: str, *, keep_characteristics: bool = False) -> None:
        self.anonymizer = Anonymizer(seed=secret)
        self.anonymizer.add_element_handler(UuidDerivedUids(secret))  # before dicognito's own UID handler
        self.keep_characteristics = keep_characteristics
        self.secret_digest = hashlib.sha256(secret.encode()).hexdigest()[:12]

    def __call__(self, dataset: Dataset) -> DicomOutcome:
        """De-identify ``dataset`` in place."""
        outcome = DicomOutcome(burned_in=burned_in_reason(dataset))
        private = sum(1 for element in dataset.iterall() if element.tag.is_private)
        dataset.remove_private_tags()
        if private:
            outcome.actions.append(f"removed {private} private elements")
        removed = [keyword for keyword in self.removed_keywords() if _remove_everywhere(dataset, keyword)]
        overlays = _remove_groups(dataset, (0x5000, 0x6000))
        if overlays:
            removed.append(f"{overlays} overlay/curve elements")
        if removed:
            outcome.actions.append("removed " + ", ".join(removed))
        self.anonymizer.anonymize(dataset)
        outcome.actions.append("pseudonymised names, IDs, UIDs, addresses, equipment; dates shifted (dicognito)")
        self._record_method(dataset)
        return outcome

    def removed_keywords(self) -> tuple[str, ...]:
        return FREE_TEXT if self.keep_characteristics else FREE_TEXT + CHARACTERISTICS

    def _record_method(self, dataset: Dataset) -> None:
        dataset.PatientIdentityRemoved = "YES"
        options = [BASIC_PROFILE, MODIFIED_DATES] + ([PATIENT_CHARACTERISTICS] if self.keep_characteristics else [])
        dataset.DeidentificationMethod = "medlearn: DICOM PS3.15 Basic Profile (dicognito pseudonyms)"
        items = []
        for value, meaning in options:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        dataset.DeidentificationMethodCodeSequence = DicomSequence(items)
        if "SOPClassUID" in dataset:  # type 2 in the Patient module: present and empty (Basic Profile action Z)
            dataset.PatientBirthDate = ""
            if not self.keep_characteristics:
                dataset.PatientSex = ""


class UuidDerivedUids(ElementAnonymizer):
    """Instance UIDs replaced by ``2.25.<128-bit integer>`` UIDs (PS3.5 B.2), the integer a keyed hash of the
    original, so one original UID always gets the same new one. dicognito's own new UIDs sit under the root
    ``2.<40 digits>``, an arc that does not exist, which validators (dciodvfy) reject. Class and transfer syntax
    UIDs are standard values and stay."""

    def __init__(self, secret: str) -> None:
        self.key = secret.encode()

    def __call__(self, dataset: Dataset, data_element: pydicom.DataElement) -> bool:
        keyword = pydicom.datadict.keyword_for_tag(data_element.tag)
        if data_element.VR != "UI" or not data_element.value:
            return False
        if keyword.endswith("ClassUID") or keyword == "TransferSyntaxUID":
            return True  # a standard value: kept, and no later handler may touch it
        values = data_element.value
        if isinstance(values, pydicom.multival.MultiValue):
            data_element.value = [self.new_uid(str(v)) for v in values]
        else:
            data_element.value = self.new_uid(str(values))
        return True

    def new_uid(self, uid: str) -> str:
        digest = hmac.new(self.key, uid.encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def describe_actions(self):
        yield "Replace instance UIDs with keyed-hash 2.25 UIDs"


def burned_in_reason(dataset: Dataset) -> str | None:
    """Why the pixels may show identifying text, or None: BurnedInAnnotation YES, or a capture-like modality
    that does not say NO."""
    said = str(dataset.get("BurnedInAnnotation", "")).upper()
    if said == "YES":
        return "BurnedInAnnotation is YES"
    modality = str(dataset.get("Modality", "")).upper()
    if said != "NO" and modality in CAPTURE_MODALITIES and "PixelData" in dataset:
        return f"modality {modality} (screen captures often carry text) without BurnedInAnnotation NO"
    return None


def _remove_everywhere(dataset: Dataset, keyword: str) -> bool:
    """Remove ``keyword`` from the dataset and every nested sequence item; whether anything was removed."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    found = False
    for item in _datasets(dataset):
        if tag in item:
            del item[tag]
            found = True
    return found


def _remove_groups(dataset: Dataset, bases: tuple[int, ...]) -> int:
    """Remove every element of the repeating groups ``base`` .. ``base + 0xFF`` (overlays 60xx, curves 50xx)."""
    count = 0
    for item in _datasets(dataset):
        tags = [element.tag for element in item if any(base <= element.tag.group <= base + 0xFF for base in bases)]
        for tag in tags:
            del item[tag]
        count += len(tags)
    return count


def _datasets(dataset: Dataset):
    yield dataset
    for element in list(dataset.values()):
        if getattr(element, "VR", None) == "SQ":
            for item in element.value:
                yield from _datasets(item)
