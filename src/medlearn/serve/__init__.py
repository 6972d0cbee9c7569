"""The inference service: trained runs and exported models behind an authenticated HTTP API with a web viewer
(``medlearn serve``). One module per concern: the served models (:mod:`.models`), the tokens (:mod:`.auth`), the
application (:mod:`.app`) and the viewer page (:mod:`.viewer`)."""
