using Morphisms.Attestation.Simulated;

namespace Morphisms.Agent.Evidence;

/// <summary>Picks the evidence provider for <c>--tee</c>, probing the device interfaces for <c>auto</c>.</summary>
public static class EvidenceProviders
{
    /// <summary>Creates the provider; <paramref name="owned"/> is disposed by the caller when the agent ends.</summary>
    public static IEvidenceProvider Create(AgentOptions options, byte[] launchConfig, out IDisposable? owned)
    {
        owned = null;
        var devices = options.Devices;
        var tee = options.Tee;
        if (tee == "auto")
        {
            // Gramine first: inside an enclave the configfs and /dev/sev-guest paths of the host are not ours.
            tee = GramineEvidenceProvider.IsPresent(devices.Gramine) ? "gramine"
                : File.Exists(devices.TdxGuest) ? "tdx"
                : SevGuestEvidenceProvider.IsPresent(devices.SevGuest) ? "snp"
                : throw new AgentException(AgentExitCodes.Evidence, "no TEE found (no /dev/attestation, /dev/tdx_guest or /dev/sev-guest); on a machine without TEE hardware use --tee sim");
        }

        switch (tee)
        {
            case "gramine":
                return new GramineEvidenceProvider(devices.Gramine);
            case "tdx":
                return ConfigFsTsm(devices, ConfigFsTsmEvidenceProvider.TdxGuest);
            case "snp":
                return ConfigFsTsmEvidenceProvider.IsPresent(devices.ConfigFsTsm)
                    ? ConfigFsTsm(devices, ConfigFsTsmEvidenceProvider.SevGuest)
                    : new SevGuestEvidenceProvider(devices.SevGuest);
            case "sim":
                var sim = options.Simulated;
                if (sim.AuthorityDirectory is null || sim.BundleDirectory is null)
                {
                    throw new AgentException(AgentExitCodes.Usage, "--tee sim needs --sim-dir (the simulated TEE's state) and --bundle (the measured function bundle)");
                }

                if (sim.HostData is { } hostData && (hostData.Length != 32 || sim.Format == "sgx"))
                {
                    throw new AgentException(AgentExitCodes.Usage, "--sim-host-data is 32 bytes (64 hex digits) and applies to --sim-format snp only");
                }

                // Measuring the bundle and loading the authority (key material, certificates) are independent and
                // both on the cold-start path: one runs on the thread pool while the other runs here.
                // The simulated TEE's record of digests (written by the host at deploy, read-only here) spares the files
                // that did not change since; any other file is digested now.
                var bundle = sim.BundleDirectory;
                var format = sim.Format;
                var stateDirectory = sim.AuthorityDirectory;
                var measuring = Task.Run(() =>
                {
                    var cache = SimulatedMeasurementCache.Open(stateDirectory, bundle);
                    return format == "sgx" ? SimulatedMeasurement.ForSgx(bundle, launchConfig, cache) : SimulatedMeasurement.ForSnp(bundle, launchConfig, cache);
                });
                var authority = SimulatedTeeAuthority.LoadOrCreate(sim.AuthorityDirectory, options.Time);
                owned = authority;
                return new SimulatedEvidenceProvider(authority, measuring.GetAwaiter().GetResult(), format, sim.HostData, launchConfig);
            default:
                throw new AgentException(AgentExitCodes.Usage, $"unknown --tee '{tee}': expected sim, gramine, snp, tdx or auto");
        }
    }

    private static ConfigFsTsmEvidenceProvider ConfigFsTsm(DeviceRoots devices, string provider)
    {
        var tdx = new TdxMrConfigIdReader(devices.TdxMrConfigId, new TdxGuestDevice(devices.TdxGuest));
        return devices.ConfigFsTsmEntry is { } entry
            ? new ConfigFsTsmEvidenceProvider(devices.ConfigFsTsm, provider) { EntryName = entry, RemoveEntry = false, TdxMrConfigId = tdx }
            : new ConfigFsTsmEvidenceProvider(devices.ConfigFsTsm, provider) { TdxMrConfigId = tdx };
    }
}
