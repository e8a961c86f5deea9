"""Kernel eras: one Backend subclass each, overriding only the rules that changed."""
