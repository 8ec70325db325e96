# Calibration split: written like the test set, used only to choose the confidence threshold
# (the questions and answer keys: heldout_calib.json).
from keys import held_out


def build():
    return held_out("heldout_calib")
