using System.Globalization;
using System.Text;

namespace Morphisms.Kms.Http;

/// <summary>Vault's duration syntax: integer seconds, or Go-style strings such as <c>90s</c>, <c>1h30m</c>, <c>7d</c>.</summary>
internal static class Durations
{
    /// <summary>The longest accepted duration: a century keeps every "now + duration" far from DateTimeOffset's range end.</summary>
    public static readonly TimeSpan Max = TimeSpan.FromDays(36500);

    /// <summary>Parses <paramref name="text"/>; false when it is not a duration.</summary>
    public static bool TryParse(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        text = text.Trim();
        if (text.Length == 0)
        {
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return TryFromSeconds(seconds, out value);
        }

        double total = 0;
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            if (start == i || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }

            double scale = text[unitStart..i] switch
            {
                "ns" => 1e-9,
                "us" or "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86400,
                _ => double.NaN,
            };
            if (double.IsNaN(scale))
            {
                return false;
            }

            total += number * scale;
        }

        if (total > Max.TotalSeconds)
        {
            return false;
        }

        value = TimeSpan.FromSeconds(Math.Floor(total));
        return true;
    }

    /// <summary>Converts whole seconds, rejecting negatives and absurd sizes.</summary>
    public static bool TryFromSeconds(long seconds, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (seconds < 0 || seconds > (long)Max.TotalSeconds)
        {
            return false;
        }

        value = TimeSpan.FromSeconds(seconds);
        return true;
    }

    /// <summary>Formats as Go's <c>time.Duration.String()</c> does for whole seconds: <c>0s</c>, <c>1h0m0s</c>.</summary>
    public static string ToGoString(TimeSpan span)
    {
        var seconds = (long)span.TotalSeconds;
        if (seconds == 0)
        {
            return "0s";
        }

        var sb = new StringBuilder();
        var hours = seconds / 3600;
        var minutes = seconds % 3600 / 60;
        var secs = seconds % 60;
        if (hours > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{hours}h");
        }

        if (hours > 0 || minutes > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{minutes}m");
        }

        return sb.Append(CultureInfo.InvariantCulture, $"{secs}s").ToString();
    }
}
