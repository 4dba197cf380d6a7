"""The data path and control plane: listeners, identity, policy, masking, approvals, store."""
