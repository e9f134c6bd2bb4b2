using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Kms.SelfAttestation;

/// <summary>What self-attestation binds and how it obtains evidence: the TLS certificate served and the evidence provider.</summary>
/// <param name="TlsCertificate">The listener's certificate, or null for plain HTTP.</param>
/// <param name="EvidenceProvider">Where the KMS's evidence comes from, or null when it has none.</param>
internal sealed record KmsIdentity(X509Certificate2? TlsCertificate, IKmsEvidenceProvider? EvidenceProvider);
