"""Generated from proto/pausable/v1 by scripts/gen_protos.py. Do not edit."""
