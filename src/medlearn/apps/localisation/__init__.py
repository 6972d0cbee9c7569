"""Localisation: named landmarks in 3D (and 2D) images; see ``medlearn.apps.localisation.cli``."""
