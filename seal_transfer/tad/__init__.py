"""Temporal action detection on SEAL Tubes (paper Table 4): tubelet features, the detector's training and
evaluation. Sits above the engine: it uses the backbone the detection stages trained."""
