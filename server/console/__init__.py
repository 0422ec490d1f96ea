"""The web console: static HTML, CSS and ES modules the daemon's HTTP gateway serves under /console/ (package data)."""
