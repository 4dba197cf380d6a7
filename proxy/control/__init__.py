"""The control API: operators list, watch and kill sessions, decide approvals and manage grants."""
