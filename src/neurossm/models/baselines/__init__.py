"""Baseline models; importing this package registers them.

- :mod:`.bolt`: ``BolT``, fused window transformer (Bedel et al., 2023).
- :mod:`.gru`: ``GRU``, bidirectional recurrent baseline.
- :mod:`.fc_svm`: ``FC_SVM``, connectivity + linear SVM (``FC_LR`` lives in :mod:`neurossm.models.fc`).
"""

from . import bolt, fc_svm, gru  # noqa: F401
