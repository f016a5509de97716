"""MediCore."""
