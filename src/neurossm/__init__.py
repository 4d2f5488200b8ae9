"""neurossm: multi-pathway state-space classification of ROI-wise fMRI time series."""

__version__ = "0.1.0"
