"""De-identification of image files before they leave the hospital: DICOM after PS3.15's Basic Profile
(:mod:`.dicom`), other formats by dropping every header field that is not geometry (:mod:`.files`), and the run
over folders with its report (:mod:`.run`)."""
