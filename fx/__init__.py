"""FX rates that ops manage, behind a provider interface, and the firm quotes taken from them."""
