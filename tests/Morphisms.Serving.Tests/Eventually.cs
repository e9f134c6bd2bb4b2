namespace Morphisms.Serving.Tests;

/// <summary>Polls a condition that another thread makes true, failing after a bound.</summary>
internal static class Eventually
{
    public static async Task True(Func<bool> condition, string what, int seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what}: not reached in {seconds} s");
            await Task.Delay(10);
        }
    }
}
