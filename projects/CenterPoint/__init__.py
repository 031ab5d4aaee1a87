"""CenterPoint: pillar-based 3D detection exported as two graphs (see project.py)."""
