"""Baseline models; importing this package registers them.

- :mod:`.bolt`: ``BolT``, fused window transformer (Bedel et al., 2023).
- :mod:`.gru`: ``GRU``, bidirectional recurrent baseline.
- :mod:`.meanmlp`: ``meanMLP``, per-time-point MLP averaged over time (Popov et al., 2024).
- :mod:`.fc_svm`: ``FC_SVM``, connectivity + linear SVM (``FC_LR`` lives in :mod:`neurossm.models.fc`).
- :mod:`.catch22`: ``catch22``, per-ROI catch22 features + logistic regression (Lubba et al., 2019).
- :mod:`.minirocket`: ``MiniRocket``, aeon's MiniRocket + ridge (Dempster et al., 2021); needs ``neurossm[ts]``.
"""

from . import bolt, catch22, fc_svm, gru, meanmlp, minirocket  # noqa: F401
