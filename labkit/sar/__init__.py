"""SAR data: ISCE2 files (:mod:`~labkit.sar.isce`), one SLC checked before reading
(:mod:`~labkit.sar.slc`), finding a stack under a folder (:mod:`~labkit.sar.discovery`)
and the synthetic SAOCOM-like stack (:mod:`~labkit.sar.synth`).
"""
