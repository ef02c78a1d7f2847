"""Ultrasound on top of the domain-agnostic core: scans, log compression, ROIs, dehazing."""
