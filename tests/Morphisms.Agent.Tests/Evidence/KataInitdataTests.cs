using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>
/// Kata initdata as a pin source: the document is believed only when the launch field the TEE measured (SNP HOST_DATA,
/// TDX MRCONFIGID) holds its digest, truncated or zero-padded as the host stamps it.
/// </summary>
public sealed class KataInitdataTests
{
    private static readonly Uri Kms = new("https://kms.morph.svc:8200/");

    /// <summary>A document in the shape <c>morph export knative</c> writes.</summary>
    public static string Document(byte[] pin, string algorithm = "sha256", string function = "hello", string kms = "https://kms.morph.svc:8200/", string extra = "") =>
        $"version = \"0.1.0\"\nalgorithm = \"{algorithm}\"\n\n[data]\n\"aa.toml\" = '''\n[token_configs]\n'''\n\"morph.toml\" = '''\n"
        + $"function = \"{function}\"\nkms_url = \"{kms}\"\nkms_ca_sha256 = \"{Convert.ToHexStringLower(pin)}\"\nimage = \"r/fn@sha256:{new string('0', 64)}\"\n{extra}'''\n";

    /// <summary>The annotation's encoding: base64 of gzip.</summary>
    public static string Annotation(string document)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(Encoding.UTF8.GetBytes(document));
        }

        return Convert.ToBase64String(buffer.ToArray());
    }

    private static PinRequest Request(KataInitdata initdata, string function = "hello") =>
        new() { Initdata = initdata, Function = function, Kms = Kms };

    [Fact]
    public void Snp_HostDataHoldingTheDocumentsSha256_YieldsItsPin()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        var document = Document(pin);
        var initdata = KataInitdata.Load("env:MORPH_INITDATA", name => name == "MORPH_INITDATA" ? Annotation(document) : null);
        Assert.Equal(Encoding.UTF8.GetBytes(document), initdata.Document);

        var measured = MeasuredPin.FromSnpReport(MeasuredPinTests.SnpReportWithHostData(SHA256.HashData(Encoding.UTF8.GetBytes(document))), "configfs-tsm");
        var (resolved, source) = PinResolver.Resolve(measured, Request(initdata), _ => Assert.Fail("no warning expected"));

        Assert.Equal(pin, resolved);
        Assert.Equal("Kata initdata (sha256) in SNP HOST_DATA", source);
    }

    [Fact]
    public void PlainTomlFile_IsReadToo_AndSha512IsTruncatedToHostData()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        var document = Document(pin, "sha512");
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, document);
            var initdata = KataInitdata.Load(file, _ => null);
            var measured = MeasuredPin.FromSnpReport(MeasuredPinTests.SnpReportWithHostData(SHA512.HashData(Encoding.UTF8.GetBytes(document))[..32]), "sev-guest");
            Assert.Equal(pin, PinResolver.Resolve(measured, Request(initdata), _ => { }).Pin);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("sha384")]
    [InlineData("sha256")]
    public void Tdx_MrConfigIdHoldingTheDigest_YieldsItsPin(string algorithm)
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        var document = Encoding.UTF8.GetBytes(Document(pin, algorithm));
        var field = new byte[48];
        (algorithm == "sha384" ? SHA384.HashData(document) : SHA256.HashData(document)).CopyTo(field, 0);
        var (configId, source) = TdxGuestTests.Reader(field).Read();
        var measured = MeasuredPin.FromTdxMrConfigId(configId, source);

        Assert.Equal(pin, PinResolver.Resolve(measured, Request(KataInitdata.Parse(document)), _ => { }).Pin);
    }

    [VectorFact]
    public async Task Tdx_AQuoteCommittingToTheHostsDocument_DoesNotMakeItMeasured()
    {
        // The host writes its own initdata (its KMS, its pin) and answers the quote request with that document's digest
        // in MRCONFIGID; the TD was created with the real document's.
        var real = Encoding.UTF8.GetBytes(Document(RandomNumberGenerator.GetBytes(32), "sha384"));
        var hosts = Encoding.UTF8.GetBytes(Document(RandomNumberGenerator.GetBytes(32), "sha384"));
        using var tree = MeasuredPinTests.ConfigFsTree("tdx_guest", MeasuredPinTests.WithMrConfigId(TestVectors.Read("tdx", "trustee_emr_90c06f000000_v5_quote.bin"), SHA384.HashData(hosts)));
        var provider = new ConfigFsTsmEvidenceProvider(tree.Root, ConfigFsTsmEvidenceProvider.TdxGuest)
        {
            EntryName = "entry0",
            RemoveEntry = false,
            TdxMrConfigId = TdxGuestTests.Reader(SHA384.HashData(real)),
        };

        var e = await Assert.ThrowsAsync<AgentException>(() => PinResolver.ResolveAsync(provider, Request(KataInitdata.Parse(hosts)), _ => { }, default));
        Assert.Equal(AgentExitCodes.Evidence, e.ExitCode);
        Assert.Contains("not the one this TEE was launched with", e.Message);
    }

    [Fact]
    public void Tdx_DigestInMrConfigId_WithoutTheDocument_IsRefusedAndSaysWhy()
    {
        var (configId, source) = TdxGuestTests.Reader(SHA384.HashData("initdata"u8)).Read();
        var measured = MeasuredPin.FromTdxMrConfigId(configId, source);

        var e = Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, new PinRequest { Unmeasured = RandomNumberGenerator.GetBytes(32), AllowUnmeasured = true }, _ => { }));
        Assert.Equal(AgentExitCodes.Evidence, e.ExitCode);
        Assert.Contains("not a Morphisms KMS CA pin", e.Message);
        Assert.Contains("--initdata", e.Message);
    }

    [Fact]
    public void ADocumentTheLaunchDidNotMeasure_IsRefused()
    {
        var measuredDocument = Document(RandomNumberGenerator.GetBytes(32));
        var hostsDocument = Document(RandomNumberGenerator.GetBytes(32));
        var measured = MeasuredPin.FromSnpReport(MeasuredPinTests.SnpReportWithHostData(SHA256.HashData(Encoding.UTF8.GetBytes(measuredDocument))), "configfs-tsm");

        var e = Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(KataInitdata.Parse(Encoding.UTF8.GetBytes(hostsDocument))), _ => { }));
        Assert.Equal(AgentExitCodes.Evidence, e.ExitCode);
        Assert.Contains("not the one this TEE was launched with", e.Message);

        // One changed byte anywhere in the document (here: a comment) is a different document.
        var commented = KataInitdata.Parse(Encoding.UTF8.GetBytes(measuredDocument + "# hi\n"));
        Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(commented), _ => { }));
    }

    [VectorFact]
    public void NothingMeasured_MakesTheDocumentWorthless()
    {
        var document = KataInitdata.Parse(Encoding.UTF8.GetBytes(Document(RandomNumberGenerator.GetBytes(32))));
        var measured = MeasuredPin.FromSnpReport(TestVectors.Read("snp", "gosevguest_milan_v2_report.bin"), "configfs-tsm");

        var e = Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(document), _ => { }));
        Assert.Equal(AgentExitCodes.NoMeasuredPin, e.ExitCode);
        Assert.Contains("nothing measured commits to it", e.Message);

        var noField = Assert.Throws<AgentException>(() => PinResolver.Resolve(new MeasuredPin(null, "gramine manifest sets nothing"), Request(document), _ => { }));
        Assert.Equal(AgentExitCodes.NoMeasuredPin, noField.ExitCode);
    }

    [Fact]
    public void TheCommandLineMustAgreeWithTheMeasuredDocument()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        var document = Document(pin);
        var initdata = KataInitdata.Parse(Encoding.UTF8.GetBytes(document));
        var measured = MeasuredPin.FromSnpReport(MeasuredPinTests.SnpReportWithHostData(SHA256.HashData(Encoding.UTF8.GetBytes(document))), "configfs-tsm");

        Assert.Contains("--function is 'other'", Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(initdata, "other"), _ => { })).Message);
        Assert.Contains("--kms is https://evil.example/",
            Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(initdata) with { Kms = new Uri("https://evil.example/") }, _ => { })).Message);
        var contradicting = Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Request(initdata) with { Unmeasured = RandomNumberGenerator.GetBytes(32) }, _ => { }));
        Assert.Equal(AgentExitCodes.Usage, contradicting.ExitCode);

        // The same KMS written without its trailing slash, or with an upper-case host, is the same KMS.
        Assert.Equal(pin, PinResolver.Resolve(measured, Request(initdata) with { Kms = new Uri("https://KMS.morph.svc:8200") }, _ => { }).Pin);
        Assert.Equal(pin, PinResolver.Resolve(measured, Request(initdata) with { Unmeasured = pin }, _ => { }).Pin);
    }

    [Theory]
    [InlineData("version = \"0.2.0\"\nalgorithm = \"sha256\"\n[data]\n", "unsupported version")]
    [InlineData("version = \"0.1.0\"\nalgorithm = \"md5\"\n[data]\n", "unsupported algorithm 'md5'")]
    [InlineData("version = \"0.1.0\"\nalgorithm = \"sha256\"\n", "no [data] table")]
    [InlineData("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"aa.toml\" = \"\"\n", "no \"morph.toml\"")]
    [InlineData("version = \"0.1.0\"\nalgorithm = \"sha256\n", "not valid TOML")]
    [InlineData("version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"morph.toml\" = '''\nfunction = \"f\"\n'''\n", "needs a non-empty string 'kms_url'")]
    public void MalformedDocuments_AreRefusedNamingTheProblem(string document, string expected)
    {
        var e = Assert.Throws<EvidenceException>(() => KataInitdata.Parse(Encoding.UTF8.GetBytes(document)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MorphTomlIsStrict()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        Assert.Contains("unknown key 'kms_ca_sha265'",
            Assert.Throws<EvidenceException>(() => KataInitdata.Parse(Encoding.UTF8.GetBytes(Document(pin, extra: "kms_ca_sha265 = \"x\"\n")))).Message);
        Assert.Contains("not an https URL",
            Assert.Throws<EvidenceException>(() => KataInitdata.Parse(Encoding.UTF8.GetBytes(Document(pin, kms: "http://kms/")))).Message);
        var shortPin = Document(pin).Replace(Convert.ToHexStringLower(pin), "abcd", StringComparison.Ordinal);
        Assert.Contains("kms_ca_sha256 is not 64 hex digits", Assert.Throws<EvidenceException>(() => KataInitdata.Parse(Encoding.UTF8.GetBytes(shortPin))).Message);
    }

    /// <summary>Documents defining a key twice (directly, by a second table header, through a dotted key), each with the key the refusal must name.</summary>
    public static TheoryData<string, string> DuplicateKeyDocuments()
    {
        var pin = RandomNumberGenerator.GetBytes(32);
        var standard = Document(pin);
        var data = standard[standard.IndexOf("[data]", StringComparison.Ordinal)..];
        return new()
        {
            { "version = \"0.1.0\"\nversion = \"0.1.0\"\nalgorithm = \"sha256\"\n\n" + data, "version" },
            { "version = \"0.1.0\"\nalgorithm = \"sha512\"\nalgorithm = \"sha256\"\n\n" + data, "algorithm" },
            { standard + "[data]\n\"x.toml\" = \"\"\n", "data" },
            { "version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata.\"morph.toml\" = \"function = 'evil'\"\n\n" + data, "data" },
            { Document(pin, extra: $"image = \"r/evil@sha256:{new string('1', 64)}\"\n"), "image" },
            { Document(pin, extra: $"kms_ca_sha256 = \"{new string('e', 64)}\"\n"), "kms_ca_sha256" },
            { standard + "[x]\na = 1\n[x]\nb = 2\n", "x" },
            { "version = \"0.1.0\"\nalgorithm = \"sha256\"\nx = { a = 1 }\nx.b = 2\n\n" + data, "x" },
        };
    }

    /// <summary>
    /// TOML forbids defining a key twice. The document is measured and read by more than one parser (Kata's agent reads
    /// the outer document too): one that kept the first of two values and one that kept the last would disagree about
    /// what was measured, so a duplicate is refused, not resolved.
    /// </summary>
    [Theory]
    [MemberData(nameof(DuplicateKeyDocuments))]
    public void DuplicateKeys_AreRefusedNamingTheKey(string document, string key)
    {
        var e = Assert.Throws<EvidenceException>(() => KataInitdata.Parse(Encoding.UTF8.GetBytes(document)));
        Assert.Contains("not valid TOML", e.Message, StringComparison.Ordinal);
        Assert.Contains($"The key `{key}` is already defined", e.Message, StringComparison.Ordinal);

        // Tomlyn quotes the first definition, which for [data] is the whole table: the refusal stays a short line.
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Length <= 300, e.Message);
    }

    [Fact]
    public void Sources_MissingVariable_BadGzip_AndInflationBombs_FailCleanly()
    {
        Assert.Contains("MORPH_INITDATA is not set", Assert.Throws<EvidenceException>(() => KataInitdata.Load("env:MORPH_INITDATA", _ => null)).Message);
        Assert.Contains("cannot read", Assert.Throws<EvidenceException>(() => KataInitdata.Load("/nonexistent/initdata.toml", _ => null)).Message);

        // Base64 of something starting like gzip but broken.
        var broken = Convert.ToBase64String([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
        Assert.Contains("not valid gzip", Assert.Throws<EvidenceException>(() => KataInitdata.Load("env:X", _ => broken)).Message);

        // 64 MiB of zeros compress to ~64 KiB; the agent stops inflating at the document limit.
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var zeros = new byte[1 << 20];
            for (var i = 0; i < 64; i++)
            {
                gzip.Write(zeros);
            }
        }

        var bomb = Convert.ToBase64String(buffer.ToArray());
        Assert.Contains("exceeds", Assert.Throws<EvidenceException>(() => KataInitdata.Load("env:X", _ => bomb)).Message);
    }

    [Fact]
    public void AgentCli_LoadFailures_AreEvidenceExitCodes()
    {
        var e = Assert.Throws<AgentException>(() => AgentCli.LoadInitdata("/nonexistent/initdata"));
        Assert.Equal(AgentExitCodes.Evidence, e.ExitCode);
    }
}
