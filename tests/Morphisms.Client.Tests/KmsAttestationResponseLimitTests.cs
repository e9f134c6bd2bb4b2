using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// <see cref="KmsAttestationClient"/> accepts any TLS certificate while it fetches the attestation (the evidence decides),
/// so whatever answers at the address, a fake KMS or anyone on the path, writes the answer it reads. That answer is read
/// only up to <see cref="KmsAttestationClient.MaxResponseBytes"/>: it used to be buffered whole, up to .NET's 2 GiB.
/// </summary>
public sealed class KmsAttestationResponseLimitTests(SimulatedTeeFixture fixture) : IClassFixture<SimulatedTeeFixture>, IDisposable
{
    private static readonly byte[] StandInMeasurement = SHA384.HashData("a KMS build"u8);
    private readonly SimulatedTeeAuthority _tee = fixture.Tee;
    private readonly X509Certificate2 _root = TestCertificates.Ca("CN=the stand-in's root");
    private readonly X509Certificate2 _tls = SelfSigned();

    public void Dispose()
    {
        _tls.Dispose();
        _root.Dispose();
    }

    private KmsTrustOptions Options => new()
    {
        Anchors = _tee.TrustedWith(TrustAnchors.Vendor),
        ExpectedMeasurements = [KmsMeasurementPin.Snp(StandInMeasurement)],
        Timeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>
    /// A genuine attestation padded past the limit is refused, naming the limit, where it was trusted; padded to just under
    /// it, the same attestation is trusted, so the size is what refuses it.
    /// </summary>
    [Fact]
    public async Task An_attestation_answer_over_the_limit_is_refused_naming_the_limit()
    {
        var over = await VerifyAsync(padding: KmsAttestationClient.MaxResponseBytes);
        Assert.False(over.Trusted);
        Assert.Null(over.Attestation);
        Assert.StartsWith($"the KMS's attestation response from https://127.0.0.1:", Assert.Single(over.Failures));
        Assert.Contains("is larger than the 1048576-byte (1 MiB) limit", over.Failures[0]);

        var under = await VerifyAsync(padding: KmsAttestationClient.MaxResponseBytes - 64 * 1024);
        Assert.True(under.Trusted, string.Join("; ", under.Failures));
    }

    /// <summary>
    /// An answer that never ends, declared as 4 GiB or sent in chunks without end, is refused once the limit is read (or at
    /// once, for the declared length), long before the timeout, and the client stops reading it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_endless_attestation_answer_is_refused_at_the_limit_not_read_to_the_timeout(bool chunked)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var written = Task.Run(() => ServeEndlessAsync(listener, chunked));
        var clock = Stopwatch.StartNew();

        var outcome = await KmsAttestationClient.VerifyAsync($"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", Options);

        Assert.False(outcome.Trusted);
        Assert.Contains("is larger than the 1048576-byte (1 MiB) limit", Assert.Single(outcome.Failures));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        // What the server got out before the client stopped reading: the limit plus what the sockets buffer, far from the end.
        Assert.True(await written.WaitAsync(TimeSpan.FromSeconds(15)) < 64L * 1024 * 1024);
    }

    /// <summary>Verifies a stand-in KMS on loopback whose genuine attestation carries <paramref name="padding"/> bytes more.</summary>
    private async Task<KmsTrustOutcome> VerifyAsync(int padding)
    {
        var spki = _tls.PublicKey.ExportSubjectPublicKeyInfo();
        using var rootKey = _root.GetECDsaPrivateKey()!;
        await using var server = new TlsTestServer(SslStreamCertificateContext.Create(_tls, null), request =>
        {
            var target = Encoding.ASCII.GetString(request).Split(' ')[1];
            var nonce = Convert.FromHexString(target[(target.IndexOf("nonce=", StringComparison.Ordinal) + "nonce=".Length)..]);
            var report = _tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = ReportDataBinding.ForKms(nonce, spki, _root.RawData), Measurement = StandInMeasurement });
            var body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                padding = new string(' ', padding),
                data = new
                {
                    tee = "snp",
                    evidence = Convert.ToBase64String(report),
                    vcek = _tee.Vcek.ExportCertificatePem(),
                    root_ca = _root.ExportCertificatePem(),
                    root_ca_proof = Convert.ToBase64String(KmsRootCaProof.Sign(rootKey, nonce, spki, _root.RawData)),
                },
            });
            return [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];
        });

        return await KmsAttestationClient.VerifyAsync($"https://127.0.0.1:{server.Endpoint.Port}", Options);
    }

    /// <summary>Answers one request with a body that does not end; returns how many body bytes went out before the client stopped reading.</summary>
    private async Task<long> ServeEndlessAsync(TcpListener listener, bool chunked)
    {
        using var client = await listener.AcceptTcpClientAsync();
        await using var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(_tls, null) });
        _ = await tls.ReadAsync(new byte[4096]); // the request
        await tls.WriteAsync(Encoding.ASCII.GetBytes(chunked
            ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            : $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {4L << 30}\r\n\r\n"));
        var piece = new byte[64 * 1024];
        piece.AsSpan().Fill((byte)' ');
        var chunk = chunked ? [.. Encoding.ASCII.GetBytes($"{piece.Length:x}\r\n"), .. piece, .. "\r\n"u8] : piece;
        long written = 0;
        try
        {
            while (written < 4L << 30)
            {
                await tls.WriteAsync(chunk);
                written += piece.Length;
            }
        }
        catch (IOException)
        {
            // The client closed the connection.
        }

        return written;
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=stand-in KMS", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }
}

/// <summary>One simulated TEE for a test class: creating its vendor chain is the slow part.</summary>
public sealed class SimulatedTeeFixture : IDisposable
{
    public SimulatedTeeAuthority Tee { get; } = SimulatedTeeAuthority.Create(TimeProvider.System);

    public void Dispose() => Tee.Dispose();
}
