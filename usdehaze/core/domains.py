"""The data domains a prior's JSON names (``normalisation.domain``): each name written once, here.

A domain names a normalisation, not a data model: the ``iq`` data model
(usdehaze.ultrasound.models.iq) runs priors of the ``IQ_MULAW`` domain (μ-law companded I/Q),
the dB models priors of ``DB``. The shipped weights' JSON records these strings.
"""

from __future__ import annotations

DB = "db"  # normalised log-compressed envelopes in [-1, 1]
IQ_MULAW = "iq-mulaw"  # μ-law companded I and Q channels in [-1, 1]
DOMAINS = (DB, IQ_MULAW)
