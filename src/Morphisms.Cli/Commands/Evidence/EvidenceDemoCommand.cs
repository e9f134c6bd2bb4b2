using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Attestation;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Cli.Paths;

namespace Morphisms.Cli.Commands.Evidence;

/// <summary>
/// <c>morph evidence demo</c>: the attestation story end to end on a machine without TEE hardware.
/// The installation's simulated TEE attests a key bound to a fresh nonce; the verifier accepts it
/// only when the simulated root is trusted, refuses it with vendor roots alone, and refuses a
/// tampered copy. When the real-hardware vectors are present, real SNP and SGX evidence is verified too.
/// </summary>
public static class EvidenceDemoCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var vectors = new Option<DirectoryInfo?>("--testvectors") { Description = "Real-hardware vectors directory (default: MORPHISMS_TESTVECTORS, else ../shared/testvectors)." };
        var command = new Command("demo", "Attest with the simulated TEE, verify, and show what is refused; verify real vectors when present.") { vectors };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var paths = MorphPaths.FromEnvironment();
            SimulatedTeeAuthority tee;
            try
            {
                tee = SimulatedTeeAuthority.LoadOrCreate(paths.SimulatedTeeDirectory, TimeProvider.System);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: the installation's simulated TEE cannot be loaded: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            var demo = new Demo(stdout);
            using (tee)
            {
                await demo.RunSimulatedAsync(paths.SimulatedTeeDirectory, tee, cancellationToken);
            }

            var vectorsDirectory = parse.GetValue(vectors)?.FullName ?? LocateVectors();
            if (vectorsDirectory is null)
            {
                await stdout.WriteLineAsync("real-hardware vectors not found (set MORPHISMS_TESTVECTORS): skipped");
            }
            else
            {
                await demo.RunRealAsync(vectorsDirectory, cancellationToken);
            }

            await stdout.WriteLineAsync(demo.Failed == 0
                ? $"demo: all {demo.Passed} expectations held"
                : $"demo: {demo.Failed} of {demo.Passed + demo.Failed} expectations FAILED");
            return demo.Failed == 0 ? ExitCodes.Ok : ExitCodes.Rejected;
        });
        return command;
    }

    private static string? LocateVectors()
    {
        var env = Environment.GetEnvironmentVariable("MORPHISMS_TESTVECTORS");
        if (!string.IsNullOrWhiteSpace(env) && Directory.Exists(env))
        {
            return env;
        }

        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "testvectors");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private sealed class Demo(TextWriter stdout)
    {
        public int Passed { get; private set; }

        public int Failed { get; private set; }

        public async Task RunSimulatedAsync(string teeDirectory, SimulatedTeeAuthority tee, CancellationToken cancellationToken)
        {
            await stdout.WriteLineAsync($"simulated TEE: {teeDirectory} (root sha256 {tee.Fingerprint[..16]}…)");

            // What a function instance does: generate a key inside the TEE, bind it and the KMS's nonce into evidence.
            using var teeKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var nonce = RandomNumberGenerator.GetBytes(32);
            var reportData = ReportDataBinding.ForFunction(nonce, teeKey.ExportSubjectPublicKeyInfo());
            var launchConfig = Encoding.UTF8.GetBytes("{\"function\":\"demo\",\"tee\":\"sim\"}");
            var bundle = AppContext.BaseDirectory;
            var snpMeasurement = SimulatedMeasurement.ForSnp(bundle, launchConfig);
            var mrEnclave = SimulatedMeasurement.ForSgx(bundle, launchConfig);
            await stdout.WriteLineAsync($"measured {bundle}: snp {Hex.Of(snpMeasurement)[..24]}…  sgx {Hex.Of(mrEnclave)[..24]}…");

            var report = tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData, Measurement = snpMeasurement });
            var quote = tee.CreateSgxQuote(new SimulatedSgxQuoteRequest { ReportData = reportData, MrEnclave = mrEnclave });
            var collateral = new FixedCollateralSource(tee.CreateSgxCollateral(DateTimeOffset.UtcNow));
            var devAnchors = tee.TrustedWith(TrustAnchors.Vendor);

            var snp = new EvidenceVerificationRequest
            {
                Tee = TeeType.Snp,
                Evidence = report,
                SnpCertificate = tee.Vcek.RawData,
                Anchors = devAnchors,
                ExpectedMeasurement = snpMeasurement,
                ExpectedReportData = reportData,
            };
            await ExpectAsync("simulated SNP report, simulated root trusted", snp, accepted: true, cancellationToken);
            await ExpectAsync("simulated SGX quote, simulated root trusted", new EvidenceVerificationRequest
            {
                Tee = TeeType.Sgx,
                Evidence = quote,
                Collateral = collateral,
                Anchors = devAnchors,
                ExpectedMeasurement = mrEnclave,
                ExpectedReportData = reportData,
            }, accepted: true, cancellationToken);
            await ExpectAsync("same SNP report, vendor roots only", snp with { Anchors = TrustAnchors.Vendor }, accepted: false, cancellationToken);

            var tampered = (byte[])report.Clone();
            tampered[0x90] ^= 0x01; // first byte of MEASUREMENT
            await ExpectAsync("SNP report with one measurement bit flipped", snp with { Evidence = tampered }, accepted: false, cancellationToken);
            await ExpectAsync("SNP report replayed for another nonce", snp with
            {
                ExpectedReportData = ReportDataBinding.ForFunction(RandomNumberGenerator.GetBytes(32), teeKey.ExportSubjectPublicKeyInfo()),
            }, accepted: false, cancellationToken);
        }

        public async Task RunRealAsync(string vectors, CancellationToken cancellationToken)
        {
            await stdout.WriteLineAsync($"real-hardware vectors: {vectors}");
            string V(params string[] parts) => Path.Combine([vectors, .. parts]);
            await ExpectAsync("AMD Milan SEV-SNP report (trustee), VCEK chain to the embedded ARK", new EvidenceVerificationRequest
            {
                Tee = TeeType.Snp,
                Evidence = await File.ReadAllBytesAsync(V("snp", "trustee_milan_v2_report.bin"), cancellationToken),
                SnpCertificate = await File.ReadAllBytesAsync(V("snp", "trustee_milan_vcek.der"), cancellationToken),
            }, accepted: true, cancellationToken);
            await ExpectAsync("AMD Milan report whose policy allows debug (go-sev-guest)", new EvidenceVerificationRequest
            {
                Tee = TeeType.Snp,
                Evidence = await File.ReadAllBytesAsync(V("snp", "gosevguest_milan_v2_report.bin"), cancellationToken),
                SnpCertificate = await File.ReadAllBytesAsync(V("snp", "gosevguest_milan_vcek.der"), cancellationToken),
            }, accepted: false, cancellationToken);
            var iceLake = OfflineCollateralStore.FromFiles(new CollateralFiles
            {
                TcbInfo = V("sgx", "automata_sgx_tcbinfo_v3_00606a000000_20250815.json"),
                QeIdentity = V("sgx", "automata_sgx_qe_identity_20250815.json"),
                PckCrl = V("sgx", "automata_pck_platform_crl_20250815.der"),
                RootCaCrl = V("sgx", "automata_root_ca_crl_20250320.der"),
            });
            var sgx = new EvidenceVerificationRequest
            {
                Tee = TeeType.Sgx,
                Evidence = await File.ReadAllBytesAsync(V("sgx", "automata_icelake_00606a000000_v3_quote.bin"), cancellationToken),
                Collateral = iceLake,
                EvaluationTime = DateTimeOffset.Parse("2025-08-15T05:45:00Z", System.Globalization.CultureInfo.InvariantCulture),
                AcceptedTcbStatuses = ["UpToDate", "SWHardeningNeeded"],
            };
            await ExpectAsync("Intel Ice Lake SGX quote with Intel collateral at its capture time", sgx, accepted: true, cancellationToken);
            await ExpectAsync("same quote today: its collateral has expired", sgx with { EvaluationTime = null }, accepted: false, cancellationToken);
        }

        private async Task ExpectAsync(string what, EvidenceVerificationRequest request, bool accepted, CancellationToken cancellationToken)
        {
            var result = await EvidenceVerifier.VerifyAsync(request, cancellationToken);
            var ok = result.Accepted == accepted;
            Passed += ok ? 1 : 0;
            Failed += ok ? 0 : 1;
            var verdict = result.Accepted ? $"accepted ({result.Status.ToWireName()}{(result.TcbStatus is { } tcb ? ", TCB " + tcb : string.Empty)})" : "refused";
            await stdout.WriteLineAsync($"  {(ok ? "ok  " : "FAIL")} {what}: {verdict}{(result.Simulated ? " [simulated]" : string.Empty)}");
            foreach (var failure in result.Failures.Take(2))
            {
                await stdout.WriteLineAsync($"         {failure}");
            }
        }
    }
}
