"""Registration: aligning a moving image to a fixed one; see ``medlearn.apps.registration.cli``."""
