using Morphisms.Attestation;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Kms.Attest;

/// <summary>
/// DCAP collateral for the trusted simulated TEE's SGX platform, made by the KMS itself (there is no Intel PCS
/// for a simulated platform); any other platform is asked of <paramref name="inner"/>. The collateral is
/// re-signed daily so it never reaches its 30-day expiry while the KMS runs.
/// </summary>
internal sealed class SimulatedCollateralSource(SimulatedTeeAuthority tee, TimeProvider time, ICollateralSource? inner) : ICollateralSource
{
    private static readonly TimeSpan Refresh = TimeSpan.FromDays(1);
    private readonly Lock _lock = new();
    private (DcapCollateral Collateral, DateTimeOffset MadeAt)? _cached;

    /// <inheritdoc />
    public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        if (request.Tee != TeeType.Sgx || !string.Equals(request.Fmspc, Hex.Of(tee.SgxPlatform.Fmspc), StringComparison.OrdinalIgnoreCase))
        {
            return inner?.GetDcapCollateralAsync(request, cancellationToken) ?? ValueTask.FromResult<DcapCollateral?>(null);
        }

        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (_cached is not { } cached || now - cached.MadeAt > Refresh || now < cached.MadeAt)
            {
                cached = (tee.CreateSgxCollateral(now), now);
                _cached = cached;
            }

            return ValueTask.FromResult<DcapCollateral?>(cached.Collateral);
        }
    }
}
