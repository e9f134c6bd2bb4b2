namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// The CPUID family, model and stepping a version 3+ report carries (offsets 0x188–0x18A).
/// Family and model are the combined (extended + base) values, e.g. family 19h model A0h.
/// </summary>
/// <param name="Family">Combined family (19h = Zen 3/4, 1Ah = Zen 5).</param>
/// <param name="Model">Combined model.</param>
/// <param name="Stepping">Stepping.</param>
public readonly record struct SnpCpuid(byte Family, byte Model, byte Stepping)
{
    /// <inheritdoc />
    public override string ToString() => $"family {Family:X2}h model {Model:X2}h stepping {Stepping}";
}
