using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.RegularExpressions;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Simulated;
using Morphisms.Client.Trust;
using Morphisms.Kms;
using Morphisms.Kms.SelfAttestation;

namespace Morphisms.Cli.Tests.Kms;

/// <summary><c>morph kms trust</c> against a dev KMS on TLS whose self-attestation uses a simulated TEE.</summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class KmsTrustCommandTests
{
    /// <summary>The measurement the test KMS reports unless told otherwise.</summary>
    private static readonly string ZeroMeasurement = new('0', 96);

    /// <summary>The same, typed: the dev KMS's simulated evidence is SNP-format.</summary>
    private static readonly string ZeroPin = "snp:" + ZeroMeasurement;

    private static readonly string OnePin = "snp:" + new string('1', 96);

    [Fact]
    public Task Trust_verifies_the_kms_and_pins_its_root_ca_only_when_the_simulated_root_is_trusted() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var trustFile = Path.Combine(home, "config", "kms-trust.json");

            var refused = await MorphRunner.RunAsync("kms", "trust", url, "--expect-measurement", ZeroMeasurement);
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains("NOT trusted", refused.Stderr);
            Assert.Contains("snp.chain", refused.Stderr);
            Assert.False(File.Exists(trustFile));

            var wrongMeasurement = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", OnePin);
            Assert.Equal(ExitCodes.Rejected, wrongMeasurement.ExitCode);
            Assert.Contains($"measurement: the KMS attests {ZeroPin}, which is not the expected {OnePin} (MEASUREMENT differs)", wrongMeasurement.Stderr);
            Assert.False(File.Exists(trustFile));

            var trusted = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--json");
            Assert.Equal(ExitCodes.Ok, trusted.ExitCode);
            Assert.Contains("simulated TEE", trusted.Stderr);
            Assert.DoesNotContain("--any-measurement", trusted.Stderr);
            var record = JsonDocument.Parse(trusted.Stdout).RootElement;
            Assert.True(record.GetProperty("simulated").GetBoolean());
            Assert.Equal([ZeroPin], record.GetProperty("expected_measurements").EnumerateArray().Select(m => m.GetString()));
            Assert.Equal(ZeroPin, record.GetProperty("measurement").GetString());
            Assert.False(record.GetProperty("any_measurement").GetBoolean());
            Assert.True(File.Exists(trustFile));
            Assert.Contains(record.GetProperty("root_ca_sha256").GetString()!, await File.ReadAllTextAsync(trustFile));

            // Several measurements (a KMS upgrade): showing one of them is enough, and the record keeps them all.
            var upgrade = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", OnePin, "--expect-measurement", ZeroPin);
            Assert.True(upgrade.ExitCode == ExitCodes.Ok, upgrade.Stderr);
            Assert.Contains($"required     {OnePin} or {ZeroPin}", upgrade.Stdout);
            Assert.Contains(OnePin, await File.ReadAllTextAsync(trustFile));
        });

    /// <summary>
    /// Genuine evidence without a measurement check proves only "some TEE": refused before the KMS is asked, nothing
    /// pinned, and the message says where the measurement comes from and how to opt out. Contradicting or malformed
    /// measurement flags are usage errors that pin nothing either.
    /// </summary>
    [Fact]
    public Task Without_an_expected_measurement_nothing_is_pinned_and_the_user_is_told_where_to_find_one() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var trustFile = Path.Combine(home, "config", "kms-trust.json");

            var refused = await MorphRunner.RunAsync("kms", "trust", url);
            Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
            Assert.Contains("--expect-measurement TEE:HEX is required", refused.Stderr);
            Assert.Contains("tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3", refused.Stderr);
            Assert.Contains("published with the KMS image", refused.Stderr);
            Assert.Contains("--any-measurement", refused.Stderr);
            Assert.Contains("Nothing was pinned", refused.Stderr);
            Assert.False(File.Exists(trustFile));

            var both = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--any-measurement", "--expect-measurement", ZeroPin);
            Assert.Equal(ExitCodes.UsageOrInput, both.ExitCode);
            Assert.Contains("contradict each other", both.Stderr);

            var tooShort = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", "0011");
            Assert.Equal(ExitCodes.UsageOrInput, tooShort.ExitCode);
            Assert.Contains("--expect-measurement: an untyped measurement of 2 bytes", tooShort.Stderr);

            var notHex = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", "xyz");
            Assert.Equal(ExitCodes.UsageOrInput, notHex.ExitCode);
            Assert.Contains("--expect-measurement: not a hexadecimal string", notHex.Stderr);
            Assert.False(File.Exists(trustFile));
        });

    /// <summary>The explicit opt-out pins whatever the measurement, saying loudly what is not checked, and records it.</summary>
    [Fact]
    public Task Any_measurement_pins_with_a_loud_warning_and_is_recorded() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trusted = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev", "--any-measurement", "--json");

            Assert.True(trusted.ExitCode == ExitCodes.Ok, trusted.Stderr);
            Assert.Contains("WARNING! --any-measurement: the KMS's measurement is NOT checked", trusted.Stderr);
            Assert.Contains("SOME genuine TEE", trusted.Stderr);
            var record = JsonDocument.Parse(trusted.Stdout).RootElement;
            Assert.True(record.GetProperty("any_measurement").GetBoolean());
            Assert.Empty(record.GetProperty("expected_measurements").EnumerateArray());
            Assert.Contains("\"any_measurement\": true", await File.ReadAllTextAsync(Path.Combine(home, "config", "kms-trust.json")));
        });

    /// <summary>
    /// <c>--dev</c> alone expects this build's dev KMS measurement: a dev KMS of this installation is pinned without
    /// typing one, and a KMS showing another measurement is not (--dev is no way around the check).
    /// </summary>
    [Fact]
    public async Task Dev_expects_this_installations_kms_measurement_by_itself()
    {
        await WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trusted = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev");
            Assert.True(trusted.ExitCode == ExitCodes.Ok, trusted.Stderr);
            Assert.Contains($"expecting this installation's dev KMS measurement snp:{Convert.ToHexStringLower(KmsMeasurement.Simulated)}", trusted.Stderr);
            Assert.Contains($"required     snp:{Convert.ToHexStringLower(KmsMeasurement.Simulated)}", trusted.Stdout);
        }, simulatedMeasurement: null);

        await WithHomeAndKmsAsync(async (home, kms) =>
        {
            var refused = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev");
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains($"measurement: the KMS attests {ZeroPin}", refused.Stderr);
            Assert.False(File.Exists(Path.Combine(home, "config", "kms-trust.json")));
        });
    }

    /// <summary>
    /// A KMS in a Kata VM (HOST_DATA set) pinned by its guest image alone is still trusted — existing deployments keep
    /// working — but <c>morph kms trust</c> warns that the pin binds no workload and shows the command with the full pin;
    /// that pin trusts it without a warning, and one with other initdata is refused naming HOST_DATA.
    /// </summary>
    [Fact]
    public Task A_guest_image_pin_of_a_kata_kms_is_trusted_with_a_warning_showing_the_full_pin()
    {
        var hostData = SHA256.HashData("the KMS's initdata.toml"u8);
        var fullPin = $"{ZeroPin},host_data={Convert.ToHexStringLower(hostData)}";
        return WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var launchOnly = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin);
            Assert.True(launchOnly.ExitCode == ExitCodes.Ok, launchOnly.Stderr);
            Assert.Contains($"WARNING! the pin {ZeroPin} accepted this KMS without its HOST_DATA, so it does NOT bind the KMS workload", launchOnly.Stderr);
            Assert.Contains($"--expect-measurement {fullPin}", launchOnly.Stderr);
            Assert.Contains($"measurement  {fullPin}", launchOnly.Stdout);
            Assert.Contains($"required     {ZeroPin}", launchOnly.Stdout);

            var full = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", fullPin, "--json");
            Assert.True(full.ExitCode == ExitCodes.Ok, full.Stderr);
            Assert.DoesNotContain("WARNING", full.Stderr);
            Assert.Equal([fullPin], JsonDocument.Parse(full.Stdout).RootElement.GetProperty("expected_measurements").EnumerateArray().Select(m => m.GetString()));

            var other = $"{ZeroPin},host_data={new string('e', 64)}";
            var refused = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", other);
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains($"which is not the expected {other} (HOST_DATA differs)", refused.Stderr);

            var malformed = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", $"{ZeroPin},mrconfigid={new string('e', 96)}");
            Assert.Equal(ExitCodes.UsageOrInput, malformed.ExitCode);
            Assert.Contains("--expect-measurement: snp: mrconfigid is TDX's", malformed.Stderr);
        }, new byte[48], hostData);
    }

    /// <summary>A trust store that cannot be read: <c>morph kms trust</c> names it and pins nothing, without a stack trace.</summary>
    [Fact]
    public Task A_corrupt_trust_file_is_named_and_left_alone() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            Directory.CreateDirectory(Path.GetDirectoryName(trustFile)!);
            await File.WriteAllTextAsync(trustFile, "{\"half-written");

            var outcome = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev", "--expect-measurement", ZeroPin);

            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"NOT pinned: {trustFile}: not a Morphisms trust store", outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
            Assert.Equal("{\"half-written", await File.ReadAllTextAsync(trustFile));
        });

    /// <summary>
    /// A TDX measurement is MRTD and RTMR0–3: MRTD alone (the firmware) is refused before the KMS is asked, naming the
    /// registers that are missing, and nothing is pinned.
    /// </summary>
    [Fact]
    public Task A_tdx_measurement_of_mrtd_alone_is_refused_naming_the_missing_registers() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var refused = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev", "--expect-measurement", "tdx:" + ZeroMeasurement);

            Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
            Assert.Contains("--expect-measurement: tdx: MRTD alone is not a KMS measurement", refused.Stderr);
            Assert.Contains("Missing: RTMR0, RTMR1, RTMR2, RTMR3", refused.Stderr);
            Assert.DoesNotContain("NOT trusted", refused.Stderr);
            Assert.False(File.Exists(Path.Combine(home, "config", "kms-trust.json")));
        });

    /// <summary>
    /// A bare 96-digit value keeps working for an SNP KMS (it is read as snp:, and the note says so), and a full tdx:
    /// measurement does not pin an SNP KMS: the refusal says the KMS is SNP and how an SNP KMS is pinned.
    /// </summary>
    [Fact]
    public Task Bare_hex_is_read_as_snp_and_a_tdx_measurement_does_not_pin_an_snp_kms() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var tdx = "tdx:" + string.Join('/', Enumerable.Repeat(ZeroMeasurement, 5));
            var wrongTee = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", tdx);
            Assert.Equal(ExitCodes.Rejected, wrongTee.ExitCode);
            Assert.Contains($"measurement: the KMS attests with snp ({ZeroPin}), but no expected measurement is for snp", wrongTee.Stderr);
            Assert.False(File.Exists(Path.Combine(home, "config", "kms-trust.json")));

            var bare = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroMeasurement);
            Assert.True(bare.ExitCode == ExitCodes.Ok, bare.Stderr);
            Assert.Contains($"note: --expect-measurement {ZeroMeasurement} has no TEE: read as {ZeroPin}", bare.Stderr);
            Assert.Contains($"required     {ZeroPin}", bare.Stdout);
        });

    /// <summary>
    /// The operator's flow: <c>morph kms status</c> on the KMS shows the root CA fingerprint, and a user who gives it
    /// with <c>--expect-root-ca</c> (any case, colons allowed) pins that root without the first-use warning. Another
    /// fingerprint — a look-alike KMS, the same image in someone else's TEE — is refused naming both and pins nothing;
    /// a malformed one is a usage error before the KMS is asked.
    /// </summary>
    [Fact]
    public Task An_expected_root_ca_pins_only_the_root_the_operator_published() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            var caFile = Path.Combine(home, "kms-tls.pem");
            await File.WriteAllTextAsync(caFile, kms.TlsCertificate!.ExportCertificatePem());

            var status = await MorphRunner.RunAsync("kms", "status", "--address", url, "--ca-cert", caFile);
            Assert.True(status.ExitCode == ExitCodes.Ok, status.Stderr);
            var published = Regex.Match(status.Stdout, @"root ca sha256\s+([0-9a-f]{64})").Groups[1].Value;
            Assert.Equal(64, published.Length);
            var statusJson = await MorphRunner.RunAsync("kms", "status", "--address", url, "--ca-cert", caFile, "--json");
            Assert.Equal(published, JsonDocument.Parse(statusJson.Stdout).RootElement.GetProperty("root_ca_sha256").GetString());

            var other = new string('a', 64);
            var refused = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--expect-root-ca", other);
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains("NOT trusted; nothing was pinned", refused.Stderr);
            Assert.Contains($"root_ca: the KMS presents the root CA sha256 {published}, not the expected {other}", refused.Stderr);
            Assert.False(File.Exists(trustFile));

            var malformed = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--expect-root-ca", published[..62]);
            Assert.Equal(ExitCodes.UsageOrInput, malformed.ExitCode);
            Assert.Contains("--expect-root-ca: ", malformed.Stderr);
            Assert.Contains("is not a SHA-256 fingerprint", malformed.Stderr);
            Assert.DoesNotContain("NOT trusted", malformed.Stderr);
            var notHex = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--expect-root-ca", new string('z', 64));
            Assert.Equal(ExitCodes.UsageOrInput, notHex.ExitCode);
            Assert.False(File.Exists(trustFile));

            // As openssl prints it: uppercase, colons between bytes.
            var openssl = string.Join(':', Enumerable.Range(0, 32).Select(i => published.Substring(i * 2, 2).ToUpperInvariant()));
            var pinned = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--expect-root-ca", openssl);
            Assert.True(pinned.ExitCode == ExitCodes.Ok, pinned.Stderr);
            Assert.Contains($"root CA      sha256 {published} (pinned, the one expected)", pinned.Stdout);
            Assert.DoesNotContain("on first use", pinned.Stderr);
            Assert.Contains(published, await File.ReadAllTextAsync(trustFile));
        });

    /// <summary>Without <c>--expect-root-ca</c> the root is pinned as today, with a warning that says so and shows its fingerprint.</summary>
    [Fact]
    public Task Without_an_expected_root_ca_the_pin_warns_that_it_is_trust_on_first_use() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trusted = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev", "--expect-measurement", ZeroPin, "--json");

            Assert.True(trusted.ExitCode == ExitCodes.Ok, trusted.Stderr);
            var root = JsonDocument.Parse(trusted.Stdout).RootElement.GetProperty("root_ca_sha256").GetString()!;
            Assert.Contains($"warning: the root CA was pinned on first use: root CA sha256 {root}", trusted.Stderr);
            Assert.Contains("--expect-root-ca", trusted.Stderr);
            Assert.True(File.Exists(Path.Combine(home, "config", "kms-trust.json")));
        });

    /// <summary>
    /// A first use happens once per address: trusting it again with the root it already pins (a measurement upgrade)
    /// says the root is unchanged from that record, not that it was pinned on first use.
    /// </summary>
    [Fact]
    public Task Trusting_again_with_the_same_root_is_not_a_new_first_use() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var first = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin);
            Assert.True(first.ExitCode == ExitCodes.Ok, first.Stderr);
            Assert.Contains("pinned on first use", first.Stderr);
            Assert.Contains("(pinned, on first use)", first.Stdout);
            var made = new KmsTrustStore(Path.Combine(home, "config", "kms-trust.json")).Find(url)!.VerifiedAt.ToUniversalTime();

            var again = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin);
            Assert.True(again.ExitCode == ExitCodes.Ok, again.Stderr);
            Assert.DoesNotContain("first use", again.Stderr);
            Assert.DoesNotContain("first use", again.Stdout);
            var root = Regex.Match(again.Stdout, @"root CA +sha256 ([0-9a-f]{64})").Groups[1].Value;
            Assert.Contains($"note: root CA sha256 {root} unchanged from the record made {made:yyyy-MM-ddTHH:mm:ssZ}", again.Stderr);
            Assert.Contains($"(pinned, unchanged from the record made {made:yyyy-MM-ddTHH:mm:ssZ})", again.Stdout);
        });

    /// <summary>
    /// Trusting a pinned address again keeps its root CA: a KMS presenting another root (root A pinned, this KMS shows
    /// B) is refused naming both, and the record stays as it was. <c>--replace-root</c> replaces it with a loud warning
    /// naming both, and <c>--expect-root-ca B</c> replaces it because the user named B. The same root (a measurement
    /// upgrade) still goes through without either.
    /// </summary>
    [Fact]
    public Task Trusting_again_refuses_a_different_root_ca_unless_it_is_expected_or_replace_root_is_given() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            var store = new KmsTrustStore(trustFile);
            var first = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--json");
            Assert.True(first.ExitCode == ExitCodes.Ok, first.Stderr);
            var rootB = JsonDocument.Parse(first.Stdout).RootElement.GetProperty("root_ca_sha256").GetString()!;

            var sameRoot = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", OnePin, "--expect-measurement", ZeroPin);
            Assert.True(sameRoot.ExitCode == ExitCodes.Ok, sameRoot.Stderr);
            Assert.DoesNotContain("replace", sameRoot.Stderr, StringComparison.OrdinalIgnoreCase);

            var rootA = new string('a', 64);
            void SeedRootA() => store.Save(store.Find(url)! with { RootCaSha256 = rootA });
            SeedRootA();
            var seeded = await File.ReadAllTextAsync(trustFile);

            var refused = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin);
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains($"is pinned to root CA sha256 {rootA}, but the KMS now presents root CA sha256 {rootB}", refused.Stderr);
            Assert.Contains("Nothing was written", refused.Stderr);
            Assert.Contains($"--expect-root-ca {rootB}", refused.Stderr);
            Assert.Contains("--replace-root", refused.Stderr);
            Assert.Equal(string.Empty, refused.Stdout);
            ErrorPathTests.AssertNoStackTrace(refused);
            Assert.Equal(seeded, await File.ReadAllTextAsync(trustFile));

            var replaced = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--replace-root");
            Assert.True(replaced.ExitCode == ExitCodes.Ok, replaced.Stderr);
            Assert.Contains($"WARNING! --replace-root: the pinned root CA sha256 {rootA} was REPLACED by root CA sha256 {rootB}", replaced.Stderr);
            Assert.Equal(rootB, store.Find(url)!.RootCaSha256);

            SeedRootA();
            var expected = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin, "--expect-root-ca", rootB);
            Assert.True(expected.ExitCode == ExitCodes.Ok, expected.Stderr);
            Assert.Contains($"replaced the pinned root CA sha256 {rootA} with root CA sha256 {rootB}, the one expected", expected.Stderr);
            Assert.DoesNotContain("WARNING", expected.Stderr);
            Assert.Equal(rootB, store.Find(url)!.RootCaSha256);
        });

    /// <summary>
    /// The root CA is public: a server at a pinned address that presents it, bound by genuine evidence (the same
    /// simulated TEE) to a TLS key of its own, but cannot sign with its key, is refused with <c>--any-measurement</c>, with
    /// or without <c>--expect-root-ca</c> naming that root, and the pinned TLS key (which <c>morph kms</c> sends tokens to)
    /// stays as it was. Without the proof the root looked "unchanged" and the stand-in's key replaced the KMS's.
    /// </summary>
    [Fact]
    public Task A_server_presenting_the_pinned_root_without_its_key_does_not_replace_the_pinned_tls_key() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            var store = new KmsTrustStore(trustFile);
            var trusted = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev", "--expect-measurement", ZeroPin);
            Assert.True(trusted.ExitCode == ExitCodes.Ok, trusted.Stderr);
            var genuine = store.Find(kms.BaseAddress.ToString())!;

            using var tee = SimulatedTeeAuthority.Load(Path.Combine(home, "data", "simulated-tee"));
            using var standInTls = SelfSigned();
            var standInSpki = standInTls.PublicKey.ExportSubjectPublicKeyInfo();
            using var root = X509Certificate2.CreateFromPem(genuine.RootCaPem);
            await using var standIn = new FakeHttpServer(request =>
            {
                var nonce = Convert.FromHexString(request.Target[(request.Target.IndexOf("nonce=", StringComparison.Ordinal) + "nonce=".Length)..]);
                var report = tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = ReportDataBinding.ForKms(nonce, standInSpki, root.RawData), Measurement = new byte[48] });
                return new FakeHttpServer.Response(200, JsonSerializer.Serialize(new
                {
                    data = new { tee = "snp", evidence = Convert.ToBase64String(report), vcek = tee.Vcek.ExportCertificatePem(), root_ca = genuine.RootCaPem },
                }));
            }, certificate: standInTls);

            // The user trusted the genuine KMS at this address; the stand-in now answers there.
            var address = standIn.Address.ToString();
            store.Save(genuine with { KmsUrl = KmsTrustStore.Normalize(address) });
            var pinned = await File.ReadAllTextAsync(trustFile);

            string[][] rootFlagsToTry = [[], ["--expect-root-ca", genuine.RootCaSha256]];
            foreach (var rootFlags in rootFlagsToTry)
            {
                var refused = await MorphRunner.RunAsync(["kms", "trust", address, "--dev", "--any-measurement", .. rootFlags]);

                Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
                Assert.Contains("NOT trusted; nothing was pinned", refused.Stderr);
                Assert.Contains($"root_ca: the KMS did not prove it holds root CA sha256 {genuine.RootCaSha256}", refused.Stderr);
                Assert.DoesNotContain("unchanged", refused.Stderr);
                Assert.Equal(pinned, await File.ReadAllTextAsync(trustFile));
            }

            Assert.Equal(genuine.TlsSpkiSha256, store.Find(address)!.TlsSpkiSha256);
        });

    /// <summary>
    /// A KMS that changed its TLS key (a new certificate) under the root already pinned proves it holds that root's key,
    /// so trusting it again replaces the pinned TLS key, and says so naming both keys.
    /// </summary>
    [Fact]
    public Task A_new_tls_key_under_the_pinned_root_is_pinned_once_the_kms_proves_the_root_and_the_change_is_said() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var store = new KmsTrustStore(Path.Combine(home, "config", "kms-trust.json"));
            Assert.Equal(ExitCodes.Ok, (await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin)).ExitCode);
            var current = store.Find(url)!;
            var earlier = new string('e', 64);
            store.Save(current with { TlsSpkiSha256 = earlier });

            var again = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", ZeroPin);

            Assert.True(again.ExitCode == ExitCodes.Ok, again.Stderr);
            Assert.Contains($"note: root CA sha256 {current.RootCaSha256} unchanged", again.Stderr);
            Assert.Contains($"note: the TLS key pinned for this address changed from sha256 {earlier} to sha256 {current.TlsSpkiSha256}; "
                + $"the KMS proved it holds the key of root CA sha256 {current.RootCaSha256} over it", again.Stderr);
            Assert.Equal(current.TlsSpkiSha256, store.Find(url)!.TlsSpkiSha256);
            Assert.True(store.Find(url)!.RootCaKeyProven);
        });

    /// <summary>
    /// A redirect during trust is not followed, to another host least of all: the evidence must come from the address
    /// pinned, and a Location header is anyone's to write. Nothing is pinned, and the message names where it pointed.
    /// </summary>
    [Fact]
    public Task A_redirect_to_another_host_is_not_followed_and_nothing_is_pinned() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var elsewhere = $"https://localhost:{kms.BaseAddress!.Port}/";
            await using var redirector = new FakeHttpServer(
                request => new FakeHttpServer.Response(307, "", new Dictionary<string, string> { ["Location"] = elsewhere + request.Target.TrimStart('/') }),
                certificate: kms.TlsCertificate);

            var outcome = await MorphRunner.RunAsync("kms", "trust", redirector.Address.ToString(), "--dev", "--expect-measurement", ZeroPin);

            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            Assert.Contains($"redirected (307) to {elsewhere}v1/sys/attestation", outcome.Stderr);
            Assert.Contains("not followed", outcome.Stderr);
            Assert.False(File.Exists(Path.Combine(home, "config", "kms-trust.json")));
        });

    /// <summary>A self-signed certificate for a stand-in server (trust takes any: the evidence decides).</summary>
    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }

    /// <summary>Runs <paramref name="test"/> against a dev KMS whose measurement is all zeros.</summary>
    private static Task WithHomeAndKmsAsync(Func<string, KmsServer, Task> test) => WithHomeAndKmsAsync(test, new byte[48]);

    /// <summary>
    /// Runs <paramref name="test"/> with MORPHISMS_HOME pointing at a fresh directory and a dev KMS on TLS whose
    /// self-attestation is the installation's simulated TEE, with <paramref name="simulatedMeasurement"/> as its launch
    /// measurement (all zeros unless told; null is this build's own, as <c>morph kms server --dev</c> reports).
    /// </summary>
    private static Task WithHomeAndKmsAsync(Func<string, KmsServer, Task> test, byte[]? simulatedMeasurement) =>
        WithHomeAndKmsAsync(test, simulatedMeasurement, hostData: null);

    /// <summary>
    /// As above; with <paramref name="hostData"/> the KMS's reports carry it as HOST_DATA, as a KMS in a Kata VM's carry
    /// its initdata digest.
    /// </summary>
    private static async Task WithHomeAndKmsAsync(Func<string, KmsServer, Task> test, byte[]? simulatedMeasurement, byte[]? hostData)
    {
        var home = Directory.CreateTempSubdirectory("morph-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            using var tee = SimulatedTeeAuthority.LoadOrCreate(Path.Combine(home, "data", "simulated-tee"), TimeProvider.System);
            await using var kms = new KmsServer(new KmsServerOptions
            {
                Listen = "127.0.0.1:0",
                Storage = "inmem",
                Dev = true,
                Tls = KmsTlsOptions.SelfSigned,
                WarningWriter = TextWriter.Null,
                Attestation = new KmsAttestationOptions
                {
                    SimulatedTee = tee,
                    TrustSimulatedTee = true,
                    SimulatedMeasurement = simulatedMeasurement,
                    EvidenceProvider = hostData is null ? null : new HostDataEvidence(tee, simulatedMeasurement ?? KmsMeasurement.Simulated, hostData),
                },
            });
            await kms.StartAsync();
            await test(home, kms);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}

/// <summary>Simulated SNP evidence with HOST_DATA set: a KMS in a Kata VM, whose initdata digest the host puts there.</summary>
internal sealed class HostDataEvidence(SimulatedTeeAuthority tee, byte[] measurement, byte[] hostData) : IKmsEvidenceProvider
{
    public Task<KmsEvidence> GetEvidenceAsync(byte[] reportData, CancellationToken cancellationToken) =>
        Task.FromResult(new KmsEvidence(Morphisms.Attestation.TeeType.Snp,
            tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData, Measurement = measurement, HostData = hostData }),
            tee.Vcek.RawData, Simulated: true));
}

/// <summary>Tests that set MORPHISMS_HOME (process-wide) run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MorphismsHomeCollection
{
    public const string Name = "MORPHISMS_HOME";
}
