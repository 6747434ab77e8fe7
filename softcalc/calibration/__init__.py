"""The steps of :func:`softcalc.calibrate.calibrate`: frames, fit methods, verdict (see that module)."""
