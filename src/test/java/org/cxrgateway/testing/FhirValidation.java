package org.cxrgateway.testing;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

import java.util.List;

/** The R4 instance validator on the base profiles, built once per test JVM (its first use takes seconds). */
public final class FhirValidation {

    private static FhirValidator validator;

    private FhirValidation() {
    }

    public static synchronized FhirValidator validator() {
        if (validator == null) {
            FhirContext ctx = FhirContext.forR4Cached();
            ValidationSupportChain chain = new ValidationSupportChain(
                    new DefaultProfileValidationSupport(ctx),
                    new CommonCodeSystemsTerminologyService(ctx),
                    new InMemoryTerminologyServerValidationSupport(ctx),
                    new SnapshotGeneratingValidationSupport(ctx));
            FhirInstanceValidator module = new FhirInstanceValidator(chain);
            validator = ctx.newValidator().registerValidatorModule(module);
        }
        return validator;
    }

    /** Messages of severity ERROR or FATAL. */
    public static List<SingleValidationMessage> errors(String json) {
        return validator().validateWithResult(json).getMessages().stream()
                .filter(m -> m.getSeverity() == ResultSeverityEnum.ERROR || m.getSeverity() == ResultSeverityEnum.FATAL)
                .toList();
    }
}
