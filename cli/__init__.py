"""The `pausable` command: `main` (the root) joins the operation commands (`operations`) and the daemon-side ones (`daemon`)."""
