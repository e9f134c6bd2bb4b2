using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>Chain checks with .NET's X509Chain and with the openssl command line.</summary>
public static class PkiAssert
{
    /// <summary>The certificates of a PEM bundle or a JSON array of PEMs.</summary>
    public static List<X509Certificate2> Certificates(IEnumerable<string> pems)
    {
        var list = new List<X509Certificate2>();
        foreach (var pem in pems)
        {
            var collection = new X509Certificate2Collection();
            collection.ImportFromPem(pem);
            list.AddRange(collection);
        }

        return list;
    }

    /// <summary>Asserts <paramref name="leaf"/> chains to <paramref name="root"/> (the only trust anchor) through <paramref name="intermediates"/> at <paramref name="at"/>.</summary>
    public static void Chains(X509Certificate2 leaf, X509Certificate2 root, IEnumerable<X509Certificate2> intermediates, DateTimeOffset at)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.ExtraStore.AddRange(intermediates.Where(c => !c.RawData.AsSpan().SequenceEqual(root.RawData)).ToArray());
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = at.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        var ok = chain.Build(leaf);
        Assert.True(ok, string.Join("; ", chain.ChainStatus.Select(s => s.Status + ": " + s.StatusInformation)));
        Assert.Equal(root.Thumbprint, chain.ChainElements[^1].Certificate.Thumbprint);
    }

    /// <summary>Asserts <c>openssl verify -CAfile root -untrusted intermediates leaf</c> succeeds at <paramref name="at"/>.</summary>
    public static void OpensslVerifies(string leafPem, string rootPem, IEnumerable<string> intermediatePems, DateTimeOffset at)
    {
        var dir = Directory.CreateTempSubdirectory("kms-pki-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "root.pem"), rootPem);
            File.WriteAllText(Path.Combine(dir, "intermediate.pem"), string.Join("\n", intermediatePems.Where(p => p.Trim() != rootPem.Trim())));
            File.WriteAllText(Path.Combine(dir, "leaf.pem"), leafPem);
            var (code, output) = Openssl(dir, "verify", "-attime", at.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-CAfile", "root.pem", "-untrusted", "intermediate.pem", "leaf.pem");
            Assert.True(code == 0, output);
            Assert.Contains("leaf.pem: OK", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Runs openssl in <paramref name="dir"/>; exit code and combined output.</summary>
    public static (int Code, string Output) Openssl(string dir, params string[] args)
    {
        var start = new ProcessStartInfo("openssl") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
