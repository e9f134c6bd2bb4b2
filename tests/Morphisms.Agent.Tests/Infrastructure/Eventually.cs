namespace Morphisms.Agent.Tests;

/// <summary>Polls for a condition that a running agent brings about on its own schedule.</summary>
internal static class Eventually
{
    /// <summary>Waits up to <paramref name="timeout"/> (20 s unless given) for <paramref name="condition"/>; fails naming <paramref name="what"/>.</summary>
    public static async Task Until(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for: {what}");
            await Task.Delay(50);
        }
    }
}
