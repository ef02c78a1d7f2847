"""The data domains a prior's JSON names (``normalisation.domain``): each name written once, here.

A domain names a normalisation, not a data model: the ``iq`` data model
(usdehaze.ultrasound.models.iq) runs priors of the ``IQ_MULAW`` domain (μ-law companded I/Q),
the dB models priors of ``DB``, the ``bmode`` model priors of ``BMODE_DB`` (exported B-mode
grey levels after a scanner's display chain). The shipped weights' JSON records these strings.
"""

from __future__ import annotations

DB = "db"  # normalised log-compressed envelopes in [-1, 1]
IQ_MULAW = "iq-mulaw"  # μ-law companded I and Q channels in [-1, 1]
BMODE_DB = "bmode-db"  # scan-converted display grey levels, grey/255·2 − 1 in [-1, 1]
DOMAINS = (DB, IQ_MULAW, BMODE_DB)
