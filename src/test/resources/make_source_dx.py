"""Writes a synthetic DX chest instance with given UIDs (the source study that AI results refer to)."""
import sys
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

out, study, series, sop, pid = sys.argv[1:6]
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
meta.MediaStorageSOPInstanceUID = sop
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = sop
ds.StudyInstanceUID = study
ds.SeriesInstanceUID = series
ds.PatientID = pid
ds.PatientName = "Doe^Jane"
ds.IssuerOfPatientID = "HOSP"
ds.PatientBirthDate = "19700101"
ds.PatientSex = "F"
ds.StudyDate = "20260101"
ds.StudyTime = "101500"
ds.StudyID = "S1"
ds.AccessionNumber = "ACC123"
ds.ReferringPhysicianName = "House^Gregory"
ds.Modality = "DX"
ds.SeriesNumber = 1
ds.InstanceNumber = 1
ds.BodyPartExamined = "CHEST"
ds.ViewPosition = "PA"
ds.PresentationIntentType = "FOR PRESENTATION"
ds.ImageType = ["ORIGINAL", "PRIMARY"]
y, x = np.mgrid[0:256, 0:256]
img = (800 + 300 * np.cos((x - 128) / 60.0) * np.cos((y - 128) / 70.0)).astype(np.uint16)
ds.Rows, ds.Columns = img.shape
ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated = 16
ds.BitsStored = 12
ds.HighBit = 11
ds.PixelRepresentation = 0
ds.PixelData = img.tobytes()
ds.is_little_endian = True
ds.is_implicit_VR = False
ds.save_as(out, write_like_original=False)
