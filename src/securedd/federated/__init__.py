"""Federated dataset distillation (SFDD): many data owners distil one synthetic set.

The pieces that do not need Flower live here and are tested on their own: how the real
data is split among clients (:mod:`~securedd.federated.shards`), how the server combines
the clients' synthetic sets and which replies it refuses
(:mod:`~securedd.federated.aggregate`), and the defences a client applies
(:mod:`~securedd.federated.defences`: LDPO-RLD label dispersion, the paper's Laplace
LocalDP, and Gaussian LocalDP with an RDP/PLD privacy ledger).
"""
