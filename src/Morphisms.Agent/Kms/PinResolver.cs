using Morphisms.Agent.Evidence;

namespace Morphisms.Agent.Kms;

/// <summary>What the agent was told about the KMS CA pin, none of it measured by itself.</summary>
public sealed record PinRequest
{
    /// <summary>The pin from the command line (<c>--kms-ca</c> / <c>--kms-ca-sha256</c>), or null.</summary>
    public byte[]? Unmeasured { get; init; }

    /// <summary>Use <see cref="Unmeasured"/> alone when the launch configuration measured no pin (logged loudly).</summary>
    public bool AllowUnmeasured { get; init; }

    /// <summary>
    /// The Kata initdata document (<c>--initdata</c>), or null. It is trusted only once its digest is found in the
    /// measured launch field; then its <c>kms_ca_sha256</c> is the measured pin.
    /// </summary>
    public KataInitdata? Initdata { get; init; }

    /// <summary>The function named on the command line; a measured initdata document must name the same one.</summary>
    public string? Function { get; init; }

    /// <summary>The KMS named on the command line; a measured initdata document must name the same one.</summary>
    public Uri? Kms { get; init; }
}

/// <summary>
/// Decides the KMS CA pin before anything is sent to the KMS. The pin is what keeps a hostile host from pointing the
/// instance at its own KMS and harvesting the attestation, so it must come from the measured launch configuration:
/// the KMS checks the measurement, and a host that changed the pin changed the measurement. A pin from the command
/// line (or any other unmeasured source) is only a cross-check, or an explicit, loudly logged opt-out.
/// </summary>
public static class PinResolver
{
    /// <summary>Reads the measured pin from <paramref name="provider"/> (when it has one) and applies <see cref="Resolve(MeasuredPin, PinRequest, Action{string})"/>.</summary>
    public static async Task<(byte[] Pin, string Source)> ResolveAsync(
        IEvidenceProvider provider, PinRequest request, Action<string> warn, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        MeasuredPin measured;
        try
        {
            measured = provider is IMeasuredPinSource source
                ? await source.ReadKmsCaPinAsync(ct).ConfigureAwait(false)
                : new MeasuredPin(null, $"{provider.Name} has no measured launch configuration");
        }
        catch (Exception e) when (e is EvidenceException or IOException or UnauthorizedAccessException)
        {
            throw new AgentException(AgentExitCodes.Evidence, $"cannot read the measured KMS CA pin from {provider.Name}: {e.Message}", e);
        }

        return Resolve(measured, request, warn);
    }

    /// <summary>
    /// With an initdata document: the document must be the one the launch field commits to (SNP HOST_DATA, TDX
    /// MRCONFIGID), and its <c>kms_ca_sha256</c> becomes the measured pin. Without one, <see cref="Resolve(MeasuredPin, byte[], bool, Action{string})"/>
    /// reads the field as the pin itself.
    /// </summary>
    public static (byte[] Pin, string Source) Resolve(MeasuredPin measured, PinRequest request, Action<string> warn)
    {
        ArgumentNullException.ThrowIfNull(measured);
        ArgumentNullException.ThrowIfNull(request);
        if (request.Initdata is { } initdata)
        {
            if (measured.Field is not { } field || !field.Value.AsSpan().ContainsAnyExcept((byte)0))
            {
                throw new AgentException(AgentExitCodes.NoMeasuredPin,
                    $"an initdata document was given, but {measured.Source}: nothing measured commits to it, so it proves nothing");
            }

            byte[] pin;
            try
            {
                pin = initdata.VerifyAgainst(field, request.Function ?? initdata.Function, request.Kms ?? initdata.Kms);
            }
            catch (EvidenceException e)
            {
                throw new AgentException(AgentExitCodes.Evidence, e.Message, e);
            }

            var viaInitdata = measured with { Sha256 = pin, Source = $"Kata initdata ({initdata.Algorithm}) in {field.Name}", NotAPin = null };
            return Resolve(viaInitdata, request.Unmeasured, request.AllowUnmeasured, warn);
        }

        if (measured.NotAPin is { } reason)
        {
            throw new AgentException(AgentExitCodes.Evidence, reason);
        }

        return Resolve(measured, request.Unmeasured, request.AllowUnmeasured, warn);
    }

    /// <summary>
    /// The rules: a measured pin wins, and an unmeasured one that contradicts it is an error (never silently
    /// ignored: it means the deployment is confused about which KMS it trusts). Without a measured pin the unmeasured
    /// one is used only with <paramref name="allowUnmeasured"/> or on the simulated TEE (which proves nothing anyway),
    /// with a warning; otherwise the agent refuses with <see cref="AgentExitCodes.NoMeasuredPin"/>.
    /// </summary>
    public static (byte[] Pin, string Source) Resolve(MeasuredPin measured, byte[]? unmeasured, bool allowUnmeasured, Action<string> warn)
    {
        ArgumentNullException.ThrowIfNull(measured);
        if (measured.Sha256 is { } pin)
        {
            if (unmeasured is not null && !unmeasured.AsSpan().SequenceEqual(pin))
            {
                throw new AgentException(AgentExitCodes.Usage,
                    $"the KMS CA pin given on the command line ({Convert.ToHexStringLower(unmeasured)}) differs from the measured one ({measured.Source}: {Convert.ToHexStringLower(pin)})");
            }

            return (pin, measured.Source);
        }

        if (unmeasured is null)
        {
            throw new AgentException(AgentExitCodes.NoMeasuredPin,
                $"no KMS CA pin: {measured.Source}, and none was given with --kms-ca or --kms-ca-sha256. {HowToMeasure}");
        }

        if (!allowUnmeasured && !measured.Simulated)
        {
            throw new AgentException(AgentExitCodes.NoMeasuredPin,
                $"no measured KMS CA pin ({measured.Source}); the command-line pin is not measured, so the host could have chosen the KMS. "
                + $"{HowToMeasure} To accept the command-line pin anyway, pass --allow-unmeasured-pin.");
        }

        warn($"USING AN UNMEASURED KMS CA PIN from the command line ({measured.Source}): whoever controls the launch command chooses which KMS this instance trusts");
        return (unmeasured, "command line (unmeasured)");
    }

    private const string HowToMeasure =
        "Set it at launch: SNP HOST_DATA = the pin, TDX MRCONFIGID = the pin followed by 16 zero bytes, "
        + "Kata initdata (morph.toml's kms_ca_sha256, with --initdata), "
        + "Gramine manifest loader.env.MORPH_KMS_CA_SHA256 = \"HEX\", or kms_ca_sha256 in the simulated launch configuration.";
}
