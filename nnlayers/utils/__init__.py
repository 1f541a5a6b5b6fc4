"""The ground floor: type aliases, argument checks, progress bars and atomic file writes, shared by every subpackage."""
