using System.Reflection;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Attestation.Tests.Simulated;

/// <summary>
/// The simulated TEE's key material is a record, whose compiler-made ToString prints every property: its private keys
/// stay out of it, its certificates stay in.
/// </summary>
public sealed class SimulatedStateRedactionTests
{
    private const string Marker = "marker-secret-7c41e09b";

    [Fact]
    public void State_LeavesThePrivateKeysOut_AndKeepsTheCertificates()
    {
        var type = typeof(SimulatedTeeAuthority).GetNestedType("State", BindingFlags.NonPublic)!;
        var names = type.GetConstructors().Single().GetParameters().Select(p => p.Name!).ToArray();
        // Every *Key member holds a private key (the marker); the others hold certificates and the chip id.
        var state = Activator.CreateInstance(type, names.Select(n => (object)(n.EndsWith("Key", StringComparison.Ordinal) ? Marker : "public-" + n)).ToArray())!;
        var text = state.ToString()!;
        Assert.Equal(7, names.Count(n => n.EndsWith("Key", StringComparison.Ordinal)));
        Assert.DoesNotContain(Marker, text, StringComparison.Ordinal);
        Assert.All(names.Where(n => !n.EndsWith("Key", StringComparison.Ordinal)), n => Assert.Contains("public-" + n, text, StringComparison.Ordinal));
    }
}
