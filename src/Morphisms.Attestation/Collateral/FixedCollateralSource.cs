namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Hands out one collateral set whatever is asked: for collateral that arrived with the evidence,
/// or the simulated TEE's. The verifier still checks that it matches the quote (FMSPC, TEE, CA).
/// </summary>
public sealed class FixedCollateralSource(DcapCollateral collateral) : ICollateralSource
{
    /// <inheritdoc />
    public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<DcapCollateral?>(collateral);
}
