"""One-time passcodes for strong customer authentication (PSD2 dynamic linking)."""
